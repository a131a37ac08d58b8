// A real Wechaty puppet-service gRPC server for tests: PuppetServer (wechaty-puppet-service)
// around PuppetMock (wechaty-puppet-mock), plus a small JSON-over-HTTP control channel.
//
//   node server.mjs --port 8788 --token test-token [--control-port 0] [--bind 127.0.0.1]
//                   [--tls] [--exit-on-stdin-close]
//
// Like `wechaty gateway`, the puppet is started at server start, not by the first client.
// A client's Start RPC on a started puppet is a no-op; its Stop RPC stops the puppet the
// wechaty-puppet 1.x way: the login is dropped and the next Start does not log back in.
// Prints `READY <grpc-port> <control-port>` on stdout once both listen. The control
// channel always listens on 127.0.0.1; gRPC on --bind (plain HTTP/2 unless --tls, which
// uses PuppetServer's built-in self-signed certificate, as the real gateway does).
//
// Control channel (all JSON; errors are {"error": "..."} with a 4xx/5xx status):
//   GET  /health             → {ok, grpcPort, controlPort, bind, tls, started, loggedIn,
//                               selfId, loginAs, streams, clientStarts, clientStops, dings}
//   GET  /stream?timeout=S   → waits until a client's event stream is attached; 408 after S s
//   POST /contact {id, name}            → create (or rename) a contact
//   POST /room {id, topic, members}     → create (or update) a room
//   POST /scan {status, qrcode?, data?} → a scan event (ScanStatus name or number)
//   POST /login {id, name?}             → the scan was confirmed: log in as `id` now
//   POST /logout                        → the account was logged out: a logout event
//   POST /error {message}               → the puppet emits `error` ({gerror} on the wire)
//   POST /friendship {id?, from, hello, name?} → a friend request from `from`
//   GET  /friendships                   → [{id, from, hello, accepted}]
//   POST /room-invite {id?, room, topic?, inviter} → a room invitation
//   GET  /room-invites                  → [{id, room, inviter, accepted}]
//   POST /say {from, text, type?}       → contact `from` sends a message to the bot
//   POST /say-self {to, text, type?}    → the account itself (its phone) sends to `to`
//   POST /room/say {room, from, text, mention, type?} → `from` says `text` in `room`
//   GET  /sent                          → what the bot sent, in order
//   DELETE /sent                        → clear that list
import http from 'node:http'
import process from 'node:process'

import { PuppetServer } from 'wechaty-puppet-service'
import { mock } from 'wechaty-puppet-mock'

import { RecordingPuppet } from './puppet.mjs'
import { makeRouter } from './routes.mjs'

function parseArgs (argv) {
  const args = { port: 0, token: '', controlPort: 0, bind: '127.0.0.1', tls: false, exitOnStdinClose: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--port') args.port = Number(argv[++i])
    else if (arg === '--token') args.token = argv[++i]
    else if (arg === '--control-port') args.controlPort = Number(argv[++i])
    else if (arg === '--bind') args.bind = argv[++i]
    else if (arg === '--tls') args.tls = true
    else if (arg === '--exit-on-stdin-close') args.exitOnStdinClose = true
    else throw new Error(`unknown argument: ${arg}`)
  }
  if (!args.port || !args.token || !args.bind) {
    throw new Error('usage: server.mjs --port N --token T [--control-port N] [--bind HOST] [--tls]')
  }
  return args
}

const args = parseArgs(process.argv.slice(2))
if (args.tls) {
  // PuppetServer uses TLS unless this says otherwise (its default cert: wechaty-puppet-service)
  delete process.env.WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER
} else {
  process.env.WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER = 'true'
}

const mocker = new mock.Mocker()
const puppet = new RecordingPuppet({ mocker })

// listeners on 'message' that are not the event stream's
let baseMessageListeners = 0
const streams = () => Math.max(0, puppet.listenerCount('message') - baseMessageListeners)

const route = makeRouter({
  puppet,
  mocker,
  streams,
  info: () => ({ grpcPort: args.port, controlPort: controlServer.address().port, bind: args.bind, tls: args.tls }),
})

const controlServer = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1')
  route(req, url).then(
    result => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(result ?? null))
    },
    err => {
      res.writeHead(err.status ?? 500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: err.message }))
    },
  )
})

const host = args.bind.includes(':') ? `[${args.bind}]` : args.bind
const puppetServer = new PuppetServer({
  endpoint: `${host}:${args.port}`,
  puppet,
  token: args.token,
  ...(args.tls ? {} : { tls: { disable: true } }),
})

let stopping = false
async function shutdown (reason) {
  if (stopping) return
  stopping = true
  puppet.shuttingDown = true
  console.error(`wechaty test server: shutting down (${reason})`)
  // Never hang: whatever happens below, leave within 5 s.
  setTimeout(() => process.exit(0), 5000).unref()
  controlServer.close()
  controlServer.closeAllConnections()
  try {
    await puppetServer.stop()
    if (puppet.state.active()) await puppet.stop()
  } catch (e) {
    console.error('wechaty test server: shutdown error', e)
  }
  process.exit(0)
}

process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
if (args.exitOnStdinClose) {
  // The parent (a test) died or closed our stdin: do not outlive it.
  process.stdin.on('end', () => shutdown('stdin closed'))
  process.stdin.on('error', () => shutdown('stdin error'))
  process.stdin.resume()
}

await puppet.start() // as `wechaty gateway` does, before any client
puppet.booted = true
await puppetServer.start()
baseMessageListeners = puppet.listenerCount('message')
await new Promise((resolve, reject) => {
  controlServer.once('error', reject)
  controlServer.listen(args.controlPort, '127.0.0.1', resolve)
})
process.stdout.write(`READY ${args.port} ${controlServer.address().port}\n`)

// A real Wechaty puppet-service gRPC server for tests: PuppetServer (wechaty-puppet-service)
// around PuppetMock (wechaty-puppet-mock), plus a small JSON-over-HTTP control channel.
//
//   node server.mjs --port 8788 --token test-token [--control-port 0] [--exit-on-stdin-close]
//
// Prints `READY <grpc-port> <control-port>` on stdout once both listen on 127.0.0.1.
// Control channel (all JSON; errors are {"error": "..."} with a 4xx/5xx status):
//   GET  /health                        → {ok, grpcPort, controlPort, loggedIn, selfId,
//                                          loginAs, streams}
//   GET  /stream?timeout=S              → waits until a client's event stream is attached
//                                          (200 {streams}); 408 after S seconds
//   POST /contact {id, name}            → create (or rename) a contact
//   POST /room {id, topic, members}     → create (or update) a room
//   POST /login {id, name?}             → log the bot in as contact `id` (created if missing),
//                                          at once if a client started the puppet, else at
//                                          the next client Start; kept across client restarts
//   POST /logout                        → log the bot out
//   POST /say {from, text}              → contact `from` says `text` to the bot
//   POST /room/say {room, from, text, mention} → `from` says `text` in `room`; with
//                                          mention=true the bot is @-mentioned
//   GET  /sent                          → [{to, text, type, id, mentions}] the bot sent, in order
//   DELETE /sent                        → clear that list
import http from 'node:http'
import crypto from 'node:crypto'
import process from 'node:process'

import * as PUPPET from 'wechaty-puppet'
import { PuppetServer } from 'wechaty-puppet-service'
import { PuppetMock, mock } from 'wechaty-puppet-mock'

function parseArgs (argv) {
  const args = { port: 0, token: '', controlPort: 0, exitOnStdinClose: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--port') args.port = Number(argv[++i])
    else if (arg === '--token') args.token = argv[++i]
    else if (arg === '--control-port') args.controlPort = Number(argv[++i])
    else if (arg === '--exit-on-stdin-close') args.exitOnStdinClose = true
    else throw new Error(`unknown argument: ${arg}`)
  }
  if (!args.port || !args.token) {
    throw new Error('usage: server.mjs --port N --token T [--control-port N]')
  }
  return args
}

const args = parseArgs(process.argv.slice(2))
// TLS off: python-wechaty speaks plain HTTP/2 gRPC.
process.env.WECHATY_PUPPET_SERVICE_NO_TLS_INSECURE_SERVER = 'true'

const mocker = new mock.Mocker()
const sent = []
// The contact the bot should be logged in as; survives client Stop/Start.
let selfId = null

// PuppetMock's message sends return no message id, so python-wechaty's `say()` raises
// after delivering. Record every send and return the created message's id instead.
class RecordingPuppet extends PuppetMock {
  record (conversationId, type, text, extra = {}) {
    if (!this.isLoggedIn) throw new Error('not logged in')
    const isRoom = mocker.cacheRoomPayload.has(conversationId)
    if (!isRoom && !mocker.cacheContactPayload.has(conversationId)) {
      throw new Error(`unknown conversation: ${conversationId}`)
    }
    const payload = {
      id: crypto.randomUUID(),
      talkerId: this.currentUserId,
      timestamp: Date.now(),
      type,
      text,
      ...(isRoom
        ? { roomId: conversationId, mentionIdList: extra.mentions ?? [] }
        : { listenerId: conversationId }),
    }
    mocker.MessageMock.create(payload)
    sent.push({ to: conversationId, text, type: PUPPET.types.Message[type], id: payload.id, ...extra })
    // A real account sees its own messages too.
    this.emit('message', { messageId: payload.id })
    return payload.id
  }

  async messageSendText (conversationId, text, mentionIdList) {
    return this.record(conversationId, PUPPET.types.Message.Text, text, { mentions: mentionIdList ?? [] })
  }

  async messageSendFile (conversationId, file) {
    return this.record(conversationId, PUPPET.types.Message.Attachment, undefined, { file: file.name })
  }

  async messageSendContact (conversationId, contactId) {
    return this.record(conversationId, PUPPET.types.Message.Contact, undefined, { contact: contactId })
  }

  async messageSendUrl (conversationId, urlLinkPayload) {
    return this.record(conversationId, PUPPET.types.Message.Url, urlLinkPayload.title, { url: urlLinkPayload.url })
  }

  async messageSendMiniProgram (conversationId, payload) {
    return this.record(conversationId, PUPPET.types.Message.MiniProgram, payload.title, {})
  }

  async messageSendLocation (conversationId, payload) {
    return this.record(conversationId, PUPPET.types.Message.Location, payload.name, {})
  }
}

const puppet = new RecordingPuppet({ mocker })

// Environments run on every mocker.start(), i.e. on every client Start (python-wechaty
// calls Stop then Start when it connects), so the login has to happen here.
mocker.use(function loginEnvironment (m) {
  if (selfId && !puppet.isLoggedIn) m.login(m.ContactMock.load(selfId))
  return () => {}
})

function ensureContact (id, name) {
  if (!id) throw httpError(400, 'contact id required')
  if (mocker.cacheContactPayload.has(id)) {
    const payload = mocker.cacheContactPayload.get(id)
    if (name != null) payload.name = name
    return mocker.ContactMock.load(id)
  }
  return mocker.createContact({ id, name: name ?? id, alias: undefined, friend: true })
}

function ensureRoom (id, topic, members) {
  if (!id) throw httpError(400, 'room id required')
  for (const m of members) {
    if (!mocker.cacheContactPayload.has(m)) throw httpError(400, `unknown member: ${m}`)
  }
  if (mocker.cacheRoomPayload.has(id)) {
    const payload = mocker.cacheRoomPayload.get(id)
    if (topic != null) payload.topic = topic
    payload.memberIdList = [...members]
    return mocker.RoomMock.load(id)
  }
  return mocker.createRoom({ id, topic: topic ?? id, memberIdList: [...members], ownerId: members[0] })
}

function inject (payload) {
  mocker.MessageMock.create(payload)
  puppet.emit('message', { messageId: payload.id })
  return payload.id
}

function requireLogin () {
  if (!puppet.isLoggedIn) throw httpError(409, 'bot is not logged in')
  return puppet.currentUserId
}

function requireContact (id) {
  if (!mocker.cacheContactPayload.has(id)) throw httpError(404, `unknown contact: ${id}`)
}

// listeners on 'message' that are not the event stream's (none today, but be safe)
let baseMessageListeners = 0
const streams = () => Math.max(0, puppet.listenerCount('message') - baseMessageListeners)

function httpError (status, message) {
  const err = new Error(message)
  err.status = status
  return err
}

async function readJson (req) {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  if (chunks.length === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw httpError(400, 'body is not JSON')
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function route (req, url) {
  const key = `${req.method} ${url.pathname}`
  switch (key) {
    case 'GET /health':
      return {
        ok: true,
        grpcPort: args.port,
        controlPort: controlServer.address().port,
        loggedIn: puppet.isLoggedIn,
        selfId: puppet.isLoggedIn ? puppet.currentUserId : null,
        loginAs: selfId, // logged in as this once a client has started the puppet
        streams: streams(),
      }
    case 'GET /stream': {
      const deadline = Date.now() + 1000 * Number(url.searchParams.get('timeout') ?? 10)
      while (streams() === 0) {
        if (Date.now() >= deadline) throw httpError(408, 'no event stream attached')
        await sleep(20)
      }
      return { streams: streams() }
    }
    case 'POST /contact': {
      const body = await readJson(req)
      ensureContact(body.id, body.name)
      return { id: body.id }
    }
    case 'POST /room': {
      const body = await readJson(req)
      ensureRoom(body.id, body.topic, body.members ?? [])
      return { id: body.id }
    }
    case 'POST /login': {
      const body = await readJson(req)
      ensureContact(body.id, body.name)
      if (puppet.isLoggedIn && puppet.currentUserId !== body.id) await puppet.logout('switch user')
      selfId = body.id
      // Started now: log in at once; otherwise loginEnvironment does it on the client's Start.
      if (puppet.state.active() && !puppet.isLoggedIn) mocker.login(mocker.ContactMock.load(selfId))
      return { selfId }
    }
    case 'POST /logout': {
      selfId = null
      await puppet.logout('logout by test')
      return { selfId }
    }
    case 'POST /say': {
      const body = await readJson(req)
      const bot = requireLogin()
      requireContact(body.from)
      const id = inject({
        id: crypto.randomUUID(),
        talkerId: body.from,
        listenerId: bot,
        timestamp: Date.now(),
        type: PUPPET.types.Message.Text,
        text: String(body.text),
      })
      return { id }
    }
    case 'POST /room/say': {
      const body = await readJson(req)
      const bot = requireLogin()
      requireContact(body.from)
      if (!mocker.cacheRoomPayload.has(body.room)) throw httpError(404, `unknown room: ${body.room}`)
      let text = String(body.text)
      if (body.mention) {
        // As WeChat does: "@<name>" followed by U+2005 (four-per-em space).
        const botName = mocker.cacheContactPayload.get(bot).name
        text = `@${botName}\u2005${text}`
      }
      const id = inject({
        id: crypto.randomUUID(),
        talkerId: body.from,
        roomId: body.room,
        mentionIdList: body.mention ? [bot] : [],
        timestamp: Date.now(),
        type: PUPPET.types.Message.Text,
        text,
      })
      return { id, text }
    }
    case 'GET /sent':
      return sent
    case 'DELETE /sent':
      sent.length = 0
      return { ok: true }
    default:
      throw httpError(404, `no route: ${key}`)
  }
}

const controlServer = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1')
  route(req, url).then(
    result => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(result))
    },
    err => {
      res.writeHead(err.status ?? 500, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: err.message }))
    },
  )
})

const puppetServer = new PuppetServer({
  endpoint: `127.0.0.1:${args.port}`,
  puppet,
  token: args.token,
  tls: { disable: true },
})

let stopping = false
async function shutdown (reason) {
  if (stopping) return
  stopping = true
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

await puppetServer.start()
baseMessageListeners = puppet.listenerCount('message')
await new Promise((resolve, reject) => {
  controlServer.once('error', reject)
  controlServer.listen(args.controlPort, '127.0.0.1', resolve)
})
process.stdout.write(`READY ${args.port} ${controlServer.address().port}\n`)

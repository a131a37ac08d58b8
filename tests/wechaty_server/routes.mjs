// The JSON control channel's routes (documented in README.md and at the top of server.mjs).
import crypto from 'node:crypto'

import * as PUPPET from 'wechaty-puppet'

import { httpError } from './puppet.mjs'

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

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

/** A wechaty-puppet enum value from its name or number, else a 400 naming `field`. */
function enumValue (enumType, value, field, fallback) {
  if (value == null) return fallback
  const number = typeof value === 'number' ? value : enumType[value]
  if (typeof number !== 'number' || enumType[number] === undefined) {
    const names = Object.keys(enumType).filter(k => isNaN(Number(k)))
    throw httpError(400, `${field}: unknown value ${JSON.stringify(value)} (one of ${names.join(', ')})`)
  }
  return number
}

export function makeRouter ({ puppet, mocker, info, streams }) {
  function ensureContact (id, name, friend = true) {
    if (!id) throw httpError(400, 'contact id required')
    if (mocker.cacheContactPayload.has(id)) {
      const payload = mocker.cacheContactPayload.get(id)
      if (name != null) payload.name = name
      return mocker.ContactMock.load(id)
    }
    return mocker.createContact({ id, name: name ?? id, alias: undefined, friend })
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
    const id = crypto.randomUUID()
    mocker.MessageMock.create({ id, timestamp: Date.now(), ...payload })
    puppet.emit('message', { messageId: id })
    return id
  }

  function requireLogin () {
    if (!puppet.isLoggedIn) throw httpError(409, 'bot is not logged in')
    return puppet.currentUserId
  }

  function requireStarted () {
    if (!puppet.state.active()) {
      throw httpError(409, 'puppet is stopped (a client sent Stop); it starts on the next client Start')
    }
  }

  function requireContact (id, field = 'from') {
    if (!id) throw httpError(400, `${field} required`)
    if (!mocker.cacheContactPayload.has(id)) throw httpError(404, `unknown contact: ${id}`)
  }

  function requireRoom (id) {
    if (!mocker.cacheRoomPayload.has(id)) throw httpError(404, `unknown room: ${id}`)
  }

  function messageType (body) {
    return enumValue(PUPPET.types.Message, body.type, 'type', PUPPET.types.Message.Text)
  }

  return async function route (req, url) {
    const key = `${req.method} ${url.pathname}`
    switch (key) {
      case 'GET /health':
        return {
          ok: true,
          ...info(),
          started: puppet.state.active() === true,
          loggedIn: puppet.isLoggedIn,
          selfId: puppet.isLoggedIn ? puppet.currentUserId : null,
          loginAs: puppet.isLoggedIn ? puppet.currentUserId : null,
          streams: streams(),
          ...puppet.counts,
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
      case 'POST /scan': {
        const body = await readJson(req)
        requireStarted()
        if (puppet.isLoggedIn) throw httpError(409, `already logged in as ${puppet.currentUserId}`)
        const status = enumValue(PUPPET.types.ScanStatus, body.status, 'status')
        if (status === undefined) throw httpError(400, 'status required')
        const payload = { status }
        if (body.qrcode != null) payload.qrcode = String(body.qrcode)
        if (body.data != null) payload.data = String(body.data)
        puppet.emit('scan', payload)
        return payload
      }
      case 'POST /login': {
        const body = await readJson(req)
        requireStarted()
        ensureContact(body.id, body.name)
        if (puppet.isLoggedIn && puppet.currentUserId === body.id) return { selfId: body.id }
        if (puppet.isLoggedIn) await puppet.logout('switch user')
        mocker.login(mocker.ContactMock.load(body.id))
        return { selfId: body.id }
      }
      case 'POST /logout':
        await puppet.logout('logout by test')
        return { selfId: null }
      case 'POST /error': {
        const body = await readJson(req)
        if (body.message == null) throw httpError(400, 'message required')
        let payload
        const listener = p => { payload = p }
        puppet.once('error', listener)
        puppet.emit('error', new Error(String(body.message))) // PuppetSkeleton → {gerror}
        puppet.off('error', listener)
        return payload
      }
      case 'POST /friendship': {
        const body = await readJson(req)
        requireLogin()
        if (!body.from) throw httpError(400, 'from required')
        const exists = mocker.cacheContactPayload.has(body.from)
        ensureContact(body.from, body.name, false)
        if (exists) mocker.cacheContactPayload.get(body.from).friend = false
        const id = puppet.addFriendRequest({ id: body.id, from: body.from, hello: body.hello })
        return { id }
      }
      case 'GET /friendships':
        return [...puppet.friendships.values()].map(({ payload, accepted }) => ({
          id: payload.id, from: payload.contactId, hello: payload.hello, accepted,
        }))
      case 'POST /room-invite': {
        const body = await readJson(req)
        requireLogin()
        if (!body.room) throw httpError(400, 'room required')
        requireContact(body.inviter, 'inviter')
        const id = puppet.addRoomInvitation(body)
        return { id }
      }
      case 'GET /room-invites':
        return [...puppet.invitations.values()].map(({ payload, roomId, accepted }) => ({
          id: payload.id, room: roomId, inviter: payload.inviterId, accepted,
        }))
      case 'POST /say': {
        const body = await readJson(req)
        const bot = requireLogin()
        requireContact(body.from)
        const type = messageType(body)
        const id = inject({ talkerId: body.from, listenerId: bot, type, text: String(body.text ?? '') })
        return { id }
      }
      case 'POST /say-self': {
        const body = await readJson(req)
        const bot = requireLogin()
        if (!body.to) throw httpError(400, 'to required')
        const isRoom = mocker.cacheRoomPayload.has(body.to)
        if (!isRoom) requireContact(body.to, 'to')
        const type = messageType(body)
        const text = String(body.text ?? '')
        const id = inject(isRoom
          ? { talkerId: bot, roomId: body.to, mentionIdList: [], type, text }
          : { talkerId: bot, listenerId: body.to, type, text })
        return { id }
      }
      case 'POST /room/say': {
        const body = await readJson(req)
        const bot = requireLogin()
        requireContact(body.from)
        requireRoom(body.room)
        let text = String(body.text ?? '')
        if (body.mention) {
          // As WeChat does: "@<name>" followed by U+2005 (four-per-em space).
          const botName = mocker.cacheContactPayload.get(bot).name
          text = `@${botName}\u2005${text}`
        }
        const id = inject({
          talkerId: body.from,
          roomId: body.room,
          mentionIdList: body.mention ? [bot] : [],
          type: messageType(body),
          text,
        })
        return { id, text }
      }
      case 'GET /sent':
        return puppet.sent
      case 'DELETE /sent':
        puppet.sent.length = 0
        return { ok: true }
      default:
        throw httpError(404, `no route: ${key}`)
    }
  }
}

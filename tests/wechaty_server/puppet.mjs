// The puppet behind the test server: PuppetMock (wechaty-puppet-mock) with what a real
// puppet has and PuppetMock lacks: message ids for sends, friend requests and room
// invitations that can be loaded and accepted, and counters for the control channel.
//
// Start/stop/login/logout are NOT overridden: they are wechaty-puppet 1.x's own. Its
// LoginMixin.stop() emits `logout` (while logged in) and forgets the user; a later start()
// does not log in again. ServiceCtl makes start() on a started puppet a no-op.
import crypto from 'node:crypto'

import * as PUPPET from 'wechaty-puppet'
import { PuppetMock } from 'wechaty-puppet-mock'

export const FILEHELPER = { id: 'filehelper', name: 'File Transfer' } // 文件传输助手

export function httpError (status, message) {
  const err = new Error(message)
  err.status = status
  return err
}

export class RecordingPuppet extends PuppetMock {
  constructor (options) {
    super(options)
    this.sent = [] // what the bot sent, in order
    this.friendships = new Map() // id → {payload, accepted}
    this.invitations = new Map() // id → {payload, roomId, accepted}
    this.counts = { clientStarts: 0, clientStops: 0, dings: 0 }
    this.booted = false // after the server's own start(): every start()/stop() is a client's
    this.shuttingDown = false
  }

  async start () {
    if (this.booted) this.counts.clientStarts++
    return super.start()
  }

  async stop () {
    if (this.booted && !this.shuttingDown) this.counts.clientStops++
    return super.stop()
  }

  ding (data) {
    this.counts.dings++
    return super.ding(data) // PuppetMock: a `dong` event with the same data 1 s later
  }

  /** Ensure the File Transfer contact exists, as on every real account. */
  onLogin () {
    if (!this.mocker.cacheContactPayload.has(FILEHELPER.id)) {
      this.mocker.createContact({ ...FILEHELPER, alias: undefined, friend: true })
    }
  }

  login (userId) {
    this.onLogin()
    return super.login(userId)
  }

  record (conversationId, type, text, extra = {}) {
    if (!this.isLoggedIn) throw new Error('not logged in')
    const mocker = this.mocker
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
    this.sent.push({ to: conversationId, text, type: PUPPET.types.Message[type], id: payload.id, ...extra })
    // A real account sees its own messages too.
    this.emit('message', { messageId: payload.id })
    return payload.id
  }

  // PuppetMock's sends return no message id, so python-wechaty's `say()` raises after
  // delivering. Record every send and return the created message's id instead.
  async messageSendText (conversationId, text, mentionIdList) {
    return this.record(conversationId, PUPPET.types.Message.Text, text, { mentions: mentionIdList ?? [] })
  }

  // Images, videos and voice go through here too: there is no separate image send RPC.
  async messageSendFile (conversationId, file) {
    const buffer = await file.toBuffer()
    const mediaType = file.mediaType || ''
    const type = mediaType.startsWith('image/')
      ? PUPPET.types.Message.Image
      : mediaType.startsWith('video/')
        ? PUPPET.types.Message.Video
        : PUPPET.types.Message.Attachment
    return this.record(conversationId, type, undefined, {
      file: file.name,
      name: file.name,
      size: buffer.length,
      sha256: crypto.createHash('sha256').update(buffer).digest('hex'),
      mediaType,
    })
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

  // -- friend requests ------------------------------------------------------------------

  /** Contact `from` asks to become a friend; emits the `friendship` event. */
  addFriendRequest ({ id, from, hello }) {
    id = id || crypto.randomUUID()
    if (this.friendships.has(id)) throw httpError(409, `friendship exists: ${id}`)
    this.friendships.set(id, {
      accepted: false,
      payload: {
        id,
        contactId: from,
        hello: hello ?? '',
        type: PUPPET.types.Friendship.Receive,
        scene: PUPPET.types.FriendshipScene.Weixin,
        stranger: `v3_${id}@stranger`,
        ticket: `v4_${id}@ticket`,
        timestamp: Date.now(),
      },
    })
    this.emit('friendship', { friendshipId: id })
    return id
  }

  async friendshipRawPayload (id) {
    const entry = this.friendships.get(id)
    if (!entry) throw new Error(`unknown friendship: ${id}`)
    return { ...entry.payload }
  }

  async friendshipRawPayloadParser (rawPayload) {
    return rawPayload
  }

  async friendshipAccept (id) {
    const entry = this.friendships.get(id)
    if (!entry) throw new Error(`unknown friendship: ${id}`)
    if (!this.isLoggedIn) throw new Error('not logged in')
    entry.accepted = true
    const contact = this.mocker.cacheContactPayload.get(entry.payload.contactId)
    // the puppet's payload cache holds this same object (PuppetMock's parsers are identity)
    if (contact) contact.friend = true
  }

  // -- room invitations -----------------------------------------------------------------

  /** `inviter` invites the bot to `room`; emits the `room-invite` event. */
  addRoomInvitation ({ id, room, topic, inviter }) {
    id = id || crypto.randomUUID()
    if (this.invitations.has(id)) throw httpError(409, `room invitation exists: ${id}`)
    const existing = this.mocker.cacheRoomPayload.get(room)
    const memberIdList = existing ? [...existing.memberIdList] : [inviter]
    this.invitations.set(id, {
      roomId: room,
      accepted: false,
      payload: {
        id,
        inviterId: inviter,
        topic: topic ?? existing?.topic ?? room,
        avatar: '',
        invitation: `https://support.weixin.qq.com/cgi-bin/mmsupport-bin/addchatroombyinvite?ticket=${id}`,
        memberCount: memberIdList.length,
        memberIdList,
        receiverId: this.currentUserId ?? '',
        timestamp: Date.now(),
      },
    })
    this.emit('room-invite', { roomInvitationId: id })
    return id
  }

  async roomInvitationRawPayload (id) {
    const entry = this.invitations.get(id)
    if (!entry) throw new Error(`unknown room invitation: ${id}`)
    return { ...entry.payload }
  }

  async roomInvitationRawPayloadParser (rawPayload) {
    return rawPayload
  }

  /** Join the room (created with the inviter if it does not exist) and say so. */
  async roomInvitationAccept (id) {
    const entry = this.invitations.get(id)
    if (!entry) throw new Error(`unknown room invitation: ${id}`)
    if (!this.isLoggedIn) throw new Error('not logged in')
    const bot = this.currentUserId
    const { inviterId, topic } = entry.payload
    const rooms = this.mocker.cacheRoomPayload
    if (rooms.has(entry.roomId)) {
      const payload = rooms.get(entry.roomId)
      if (!payload.memberIdList.includes(bot)) payload.memberIdList.push(bot)
    } else {
      this.mocker.createRoom({ id: entry.roomId, topic, memberIdList: [inviterId, bot], ownerId: inviterId })
    }
    entry.accepted = true
    this.emit('room-join', {
      roomId: entry.roomId,
      inviteeIdList: [bot],
      inviterId,
      timestamp: Date.now(),
    })
  }
}

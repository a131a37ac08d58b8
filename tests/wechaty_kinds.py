"""What real WeChat puppets deliver for each kind of message, for the Wechaty test server.

A puppet gives python-wechaty a message ``type`` (a wechaty-puppet ``MessageType`` name on
the server side) and a ``text`` that, for anything but plain text, is the raw XML WeChat
sent. ``KINDS`` maps a short kind name to that type name and a realistic text template
(``{sender}``, ``{to}``, ``{name}``, ``{n}`` are filled in by :func:`kind_message`).
"""

from __future__ import annotations

import hashlib

# WeChat's quote-reply text: 「<name>：<quoted>」, a line of dashes, the reply.
QUOTE_RULE = "- - - - - - - - - - - - - - -"


def quote_text(quoted_name: str, quoted_text: str, reply: str) -> str:
    """The text WeChat delivers for a reply that quotes ``quoted_name``'s message."""
    return f"「{quoted_name}：{quoted_text}」\n{QUOTE_RULE}\n{reply}"


_IMAGE = (
    '<?xml version="1.0"?>\n<msg>\n\t<img aeskey="{key}" encryver="1" cdnthumbaeskey="{key}"'
    ' cdnthumburl="{cdn}" cdnthumblength="3024" cdnthumbheight="120" cdnthumbwidth="90"'
    ' cdnmidheight="0" cdnmidwidth="0" cdnhdheight="0" cdnhdwidth="0" cdnmidimgurl="{cdn}"'
    ' length="61205" md5="{md5}" hevc_mid_size="61205" />\n</msg>\n'
)
_VOICE = (
    '<msg><voicemsg endflag="1" cancelflag="0" forwardflag="0" voiceformat="4"'
    ' voicelength="2100" length="3264" bufid="0" aeskey="{key}" voiceurl="{cdn}"'
    ' voicemd5="" clientmsgid="{md5}" fromusername="{sender}" /></msg>'
)
_VIDEO = (
    '<?xml version="1.0"?>\n<msg>\n\t<videomsg aeskey="{key}" cdnthumburl="{cdn}"'
    ' cdnthumbaeskey="{key}" cdnthumblength="8304" cdnthumbwidth="224" cdnthumbheight="400"'
    ' cdnvideourl="{cdn}" length="1022045" playlength="6" fromusername="{sender}"'
    ' md5="{md5}" newmd5="{md5}" isplaceholder="0" />\n</msg>\n'
)
_EMOJI = (
    '<msg><emoji fromusername="{sender}" tousername="{to}" type="2" idbuffer="media:0_0"'
    ' md5="{md5}" len="2386" productid="" androidmd5="{md5}" androidlen="2386"'
    ' cdnurl="http://wxapp.tc.qq.com/262/20304/stodownload?m={md5}&amp;filekey=30340201"'
    ' designerid="" thumburl="" encrypturl="" aeskey="{key}" width="240" height="240"'
    ' tpurl="" tpauthkey="" attachedtext="" attachedtextcolor="" lensid="" emojiattr=""'
    ' linkid="" desc="" /></msg>'
)


def _appmsg(kind: int, title: str, body: str) -> str:
    return (
        '<?xml version="1.0"?>\n<msg>\n\t<appmsg appid="" sdkver="0">\n'
        f"\t\t<title>{title}</title>\n\t\t<des></des>\n\t\t<type>{kind}</type>\n{body}"
        "\t</appmsg>\n\t<fromusername>{sender}</fromusername>\n\t<scene>0</scene>\n"
        "\t<appinfo>\n\t\t<version>1</version>\n\t\t<appname></appname>\n\t</appinfo>\n"
        "\t<commenturl></commenturl>\n</msg>\n"
    )


_FILE = _appmsg(
    6,
    "report.pdf",
    "\t\t<appattach>\n\t\t\t<totallen>48213</totallen>\n\t\t\t<attachid>@cdn_{md5}_1</attachid>"
    "\n\t\t\t<fileext>pdf</fileext>\n\t\t\t<cdnattachurl>{cdn}</cdnattachurl>\n"
    "\t\t\t<aeskey>{key}</aeskey>\n\t\t</appattach>\n\t\t<md5>{md5}</md5>\n",
)
_LINK = _appmsg(
    5,
    "Release notes",
    "\t\t<url>https://example.com/release-notes?from=singlemessage</url>\n"
    "\t\t<thumburl></thumburl>\n",
)
_MINI_PROGRAM = _appmsg(
    33,
    "Mini Program",
    "\t\t<sourcedisplayname>Mini Program</sourcedisplayname>\n"
    "\t\t<weappinfo>\n\t\t\t<username><![CDATA[gh_0123456789ab@app]]></username>\n"
    "\t\t\t<appid><![CDATA[wx0123456789abcdef]]></appid>\n"
    "\t\t\t<pagepath><![CDATA[pages/index/index.html]]></pagepath>\n\t\t</weappinfo>\n",
)
_CHAT_HISTORY = _appmsg(
    19,
    "Chat History",
    "\t\t<recorditem><![CDATA[<recordinfo><title>Chat History</title>"
    '<desc>{name}: hello</desc><datalist count="1"><dataitem datatype="1">'
    "<datadesc>hello</datadesc><sourcename>{name}</sourcename></dataitem></datalist>"
    "</recordinfo>]]></recorditem>\n",
)
_LOCATION = (
    '<?xml version="1.0"?>\n<msg>\n\t<location x="39.908823" y="116.397470" scale="15"'
    ' label="Tiananmen Square, Dongcheng, Beijing" maptype="roadmap" poiname="Tiananmen"'
    ' poiid="" />\n</msg>\n'
)
_CONTACT = (
    '<?xml version="1.0"?>\n<msg bigheadimgurl="" smallheadimgurl="" username="wxid_card"'
    ' nickname="Card" alias="" province="" city="" sign="" sex="0" certflag="0"'
    ' certinfo="" brandIconUrl="" brandHomeUrl="" regionCode="" scene="17" />\n'
)
_RECALL = (
    '<sysmsg type="revokemsg"><revokemsg><session>{sender}</session>'
    "<oldmsgid>1037311025</oldmsgid><msgid>1037311025</msgid>"
    '<newmsgid>{n}</newmsgid><replacemsg><![CDATA["{name}" recalled a message]]>'
    "</replacemsg></revokemsg></sysmsg>"
)

# kind → (wechaty-puppet MessageType name, text template)
KINDS: dict[str, tuple[str, str]] = {
    "text": ("Text", "hello"),
    "image": ("Image", _IMAGE),
    "voice": ("Audio", _VOICE),
    "video": ("Video", _VIDEO),
    "sticker": ("Emoticon", _EMOJI),
    "file": ("Attachment", _FILE),
    "link": ("Url", _LINK),
    "mini_program": ("MiniProgram", _MINI_PROGRAM),
    "chat_history": ("ChatHistory", _CHAT_HISTORY),
    "location": ("Location", _LOCATION),
    "contact": ("Contact", _CONTACT),
    "recall": ("Recalled", _RECALL),
    "transfer": ("Transfer", _appmsg(2000, "微信转账", "\t\t<wcpayinfo></wcpayinfo>\n")),
    "red_envelope": ("RedEnvelope", _appmsg(2001, "微信红包", "\t\t<wcpayinfo></wcpayinfo>\n")),
    # WeChat's own notices (MsgType 10000): wechaty-puppet 1.x has no System type
    "system": ("Unknown", "You have added {name} as your WeChat contact. Start chatting!"),
}


def kind_message(kind: str, sender: str, to: str, name: str) -> tuple[str, str]:
    """``(type name, text)`` for ``kind`` sent by ``sender`` (display ``name``) to ``to``."""
    try:
        type_name, template = KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown message kind {kind!r}; one of {', '.join(KINDS)}") from None
    md5 = hashlib.md5(f"{kind}:{sender}:{to}".encode()).hexdigest()
    n = int(md5[:15], 16)
    cdn = f"3057020100044b30490201000204{md5[:16]}02032f56c3020468{md5[16:24]}0204"
    fields = {"sender": sender, "to": to, "name": name, "n": n, "md5": md5, "key": md5, "cdn": cdn}
    return type_name, template.format(**fields)

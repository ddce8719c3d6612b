"""A WHEP viewer on aiortc (Python, libsrtp and OpenSSL underneath): watches a
channel, decodes what it gets, and prints one JSON report.

usage: aiortc_whep.py BASE_URL CHANNEL SECONDS PROFILE
PROFILE: gcm | cm | all -- which SRTP protection profiles its DTLS offers.
"""

import asyncio
import json
import sys
import time
import urllib.request

import aiortc.rtcdtlstransport as dtls
from aiortc import RTCPeerConnection, RTCSessionDescription


def post_offer(url, sdp):
    req = urllib.request.Request(
        url, data=sdp.encode(), headers={"Content-Type": "application/sdp"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read().decode()


async def main(base, channel, seconds, profile):
    # The list aiortc's DTLS offers in use_srtp, read when a transport is made.
    wanted = {
        "gcm": [dtls.SRTP_AEAD_AES_128_GCM],
        "cm": [dtls.SRTP_AES128_CM_SHA1_80],
        "all": list(dtls.SRTP_PROFILES),
    }[profile]
    dtls.SRTP_PROFILES[:] = wanted

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    channel_dc = pc.createDataChannel("chat")
    report = {"frames": 0, "audio_frames": 0, "sizes": [], "chat": [], "first_frame_ms": None}
    channel_dc.on("message", lambda m: report["chat"].append(m if isinstance(m, str) else m.decode()))
    started = time.monotonic()

    @pc.on("track")
    def on_track(track):
        async def consume():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    if report["frames"] == 0:
                        report["first_frame_ms"] = int((time.monotonic() - started) * 1000)
                    report["frames"] += 1
                    size = [frame.width, frame.height]
                    if size not in report["sizes"]:
                        report["sizes"].append(size)
                else:
                    report["audio_frames"] += 1

        asyncio.ensure_future(consume())

    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, answer = await loop.run_in_executor(
        None, post_offer, f"{base}/whep/{channel}", pc.localDescription.sdp
    )
    report["status"] = status
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.sleep(seconds)
    report["connection"] = pc.connectionState
    await pc.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))

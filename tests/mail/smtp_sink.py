"""A real SMTP server for Passport's tests (crates/server/tests/common/mail.rs).

aiosmtpd (pinned in .ci/run) listening on 127.0.0.1:PORT; every message it receives is
written to DIR as NNNNNN.eml (written to a temporary name, then renamed, so a reader never
sees half a message), with the envelope recipients first in an `X-Envelope-To` line.
Prints "ready" once it accepts connections, and stops when its stdin closes (the test
holds the other end, so the server never outlives the test).

Usage: python3 smtp_sink.py PORT DIR
"""

import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:06}.eml"
        tmp = os.path.join(self.directory, "." + name)
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

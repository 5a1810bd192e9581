"""A local SMTP server for the tests (aiosmtpd): its handler keeps what it is given; the `smtp` fixture
(tests/conftest.py) runs one on a free loopback port."""
import asyncio
import email
from email import policy


class Inbox:
    """An SMTP server's handler: keeps what it is given; some addresses answer with an error.

    ``ehlos`` counts EHLO commands (one per connection), ``sessions`` the connection each message
    came on; with ``drop_after_data`` set, the server closes the connection after accepting a message.
    """

    def __init__(self):
        self.messages = []
        self.ehlos = 0
        self.sessions = []
        self.drop_after_data = False

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlos += 1
        session.number = self.ehlos  # (not id(session): a closed session's id may be reused)
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.sessions.append(session.number)
        if self.drop_after_data:
            asyncio.get_running_loop().call_soon(server.transport.close)  # after the 250 is written
        return "250 Message accepted"

#!/usr/bin/env python3
"""One SIP call to the Tollgate SBC over TLS (or TCP/UDP), stdlib only.

Sends an INVITE with an SDP offer (RTP/AVP, or RTP/SAVP with an a=crypto
line with --srtp), optionally presenting a client certificate, reads the final
response; for a 2xx sends ACK (to the Contact, through the Record-Route set)
and BYE and waits for the BYE's 200. Prints

    RESULT <code> <X-Tollgate-Rule or -> <reason phrase>
    BYE 200                                  (after a 2xx)
    TLS-REJECTED <reason>                    (the TLS layer refused us)

Exit: 0 a final response was received (and, for a 2xx, the BYE got 200);
2 protocol error or timeout; 3 the TLS handshake/connection was refused.

  tls_call.py --sbc 127.0.77.1:5062 --src 127.50.1.1 --ca ca.pem \
      [--cert client.pem --key client.key] [--tls12] [--srtp] [--transport tls|tcp|udp] \
      [--number +12125550100] [--timeout 5] [--pause-ms 200]
"""
import argparse
import base64
import os
import random
import socket
import ssl
import sys
import time


class ProtocolError(Exception):
    pass


class TlsRejected(Exception):
    pass


def split_hostport(s):
    """'1.2.3.4:5060' or '[::1]:5060' -> (host, port)."""
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        return host, int(rest.lstrip(":"))
    host, _, port = s.rpartition(":")
    return host, int(port)


def fmt_host(h):
    return "[%s]" % h if ":" in h else h


def parse_message(data):
    """bytes of one SIP message -> (first line, [(name, value)], body)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded line
            n, v = headers[-1]
            headers[-1] = (n, v + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError("bad header line: %r" % line)
        headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers, body


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": "content-length"}


def hdr(headers, name, default=None):
    for n, v in headers:
        if COMPACT.get(n, n) == name:
            return v
    return default


def hdrs(headers, name):
    return [v for n, v in headers if COMPACT.get(n, n) == name]


class Conn:
    """A message reader/writer over a stream (tcp, tls) or udp socket."""

    def __init__(self, args):
        self.transport = args.transport
        self.host, self.port = split_hostport(args.sbc)
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(fam, kind)
        self.sock.settimeout(args.timeout)
        self.sock.bind((args.src, 0))
        self.buf = b""
        if self.transport == "udp":
            self.sock.connect((self.host, self.port))
        else:
            self.sock.connect((self.host, self.port))
        if self.transport == "tls":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if args.tls12:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            if args.ca:
                ctx.load_verify_locations(args.ca)
            else:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if args.cert:
                ctx.load_cert_chain(args.cert, args.key)
            try:
                self.sock = ctx.wrap_socket(self.sock, server_hostname=self.host)
            except (ssl.SSLError, ConnectionError) as e:
                raise TlsRejected("handshake: %s" % e)
        self.local = self.sock.getsockname()[:2]

    def send(self, msg):
        data = msg.encode()
        try:
            self.sock.sendall(data)
        except (ssl.SSLError, ConnectionError) as e:
            raise TlsRejected("send: %s" % e) if self.transport == "tls" else ProtocolError(str(e))

    def recv(self, deadline):
        """The next whole message, or raises ProtocolError at the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProtocolError("timeout waiting for a message")
            self.sock.settimeout(left)
            if self.transport == "udp":
                try:
                    data = self.sock.recv(65535)
                except socket.timeout:
                    continue
                if data.strip():
                    return parse_message(data)
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                _, headers, _ = parse_message(self.buf[: end + 4])
                clen = int(hdr(headers, "content-length", "0"))
                total = end + 4 + clen
                if len(self.buf) >= total:
                    data, self.buf = self.buf[:total], self.buf[total:]
                    return parse_message(data)
            elif self.buf.strip(b"\r\n") == b"":
                self.buf = b""  # keep-alive CRLFs
            try:
                chunk = self.sock.recv(65535)
            except socket.timeout:
                continue
            except (ssl.SSLError, ConnectionError) as e:
                if self.transport == "tls":
                    raise TlsRejected("read: %s" % e)
                raise ProtocolError("read: %s" % e)
            if not chunk:
                if self.transport == "tls":
                    raise TlsRejected("connection closed by the server before any response")
                raise ProtocolError("connection closed")
            self.buf += chunk


def branch():
    return "z9hG4bK-tg-" + base64.b32encode(os.urandom(10)).decode().lower().rstrip("=")


def sdp(ip, srtp):
    ipv = "IP6" if ":" in ip else "IP4"
    lines = ["v=0", "o=tg 1 1 IN %s %s" % (ipv, ip), "s=-", "c=IN %s %s" % (ipv, ip), "t=0 0"]
    if srtp:
        key = base64.b64encode(os.urandom(30)).decode()
        lines += ["m=audio 40000 RTP/SAVP 0", "a=rtpmap:0 PCMU/8000",
                  "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key]
    else:
        lines += ["m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"]
    return "\r\n".join(lines) + "\r\n"


def request(method, ruri, via, frm, to, callid, cseq, contact, routes=(), body="", ctype=None):
    h = ["%s %s SIP/2.0" % (method, ruri), "Via: " + via, "Max-Forwards: 70",
         "From: " + frm, "To: " + to, "Call-ID: " + callid, "CSeq: %d %s" % (cseq, method)]
    h += ["Route: " + r for r in routes]
    if contact:
        h.append("Contact: " + contact)
    if ctype:
        h.append("Content-Type: " + ctype)
    h.append("Content-Length: %d" % len(body.encode()))
    return "\r\n".join(h) + "\r\n\r\n" + body


def status_of(first):
    parts = first.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("SIP/2.0") or not parts[1].isdigit():
        return None, None
    return int(parts[1]), (parts[2] if len(parts) > 2 else "")


def uri_of(nameaddr):
    if "<" in nameaddr:
        return nameaddr[nameaddr.index("<") + 1: nameaddr.index(">")]
    return nameaddr.split(";")[0].strip()


def call(args):
    conn = Conn(args)
    lip, lport = conn.local
    tp = args.transport.upper()
    sbc = "%s:%d" % (fmt_host(conn.host), conn.port)
    callid = "tg-%s@%s" % (base64.b32encode(os.urandom(8)).decode().lower().rstrip("="), fmt_host(lip))
    frm = "<sip:caller@%s>;tag=tg%d" % (fmt_host(lip), random.randrange(1 << 30))
    to = "<sip:%s@%s>" % (args.number, sbc)
    ruri = "sip:%s@%s" % (args.number, sbc)
    contact = "<sip:caller@%s:%d;transport=%s>" % (fmt_host(lip), lport, args.transport)
    tparam = ";transport=tls" if args.transport == "tls" else (";transport=tcp" if args.transport == "tcp" else "")
    ruri += tparam
    via_inv = "SIP/2.0/%s %s:%d;branch=%s;rport" % (tp, fmt_host(lip), lport, branch())
    invite = request("INVITE", ruri, via_inv, frm, to, callid, 1, contact,
                     body=sdp(lip, args.srtp), ctype="application/sdp")
    deadline = time.monotonic() + args.timeout
    conn.send(invite)
    resend = time.monotonic() + 0.5
    while True:
        if args.transport == "udp" and time.monotonic() >= resend:
            conn.send(invite)
            resend = time.monotonic() + 1.0
        wait = min(deadline, resend) if args.transport == "udp" else deadline
        try:
            first, headers, _ = conn.recv(wait)
        except ProtocolError:
            if time.monotonic() < deadline:
                continue
            raise ProtocolError("no final response to the INVITE within %ss" % args.timeout)
        code, phrase = status_of(first)
        if code is None:
            continue  # a request (e.g. OPTIONS keepalive): ignore
        if not hdr(headers, "cseq", "").endswith("INVITE"):
            continue
        if code >= 200:
            break
    rule = hdr(headers, "x-tollgate-rule", "-")
    print("RESULT %d %s %s" % (code, rule, phrase), flush=True)
    to_tagged = hdr(headers, "to")
    if code >= 300:
        # hop-by-hop ACK for a non-2xx final response (same branch)
        conn.send(request("ACK", ruri, via_inv, frm, to_tagged, callid, 1, None))
        return 0
    # 2xx: ACK and BYE go to the Contact through the Record-Route set (reversed)
    rr = []
    for v in hdrs(headers, "record-route"):
        rr += [x.strip() for x in v.split(",") if x.strip()]
    routes = list(reversed(rr))
    ccontact = hdr(headers, "contact")
    if not ccontact:
        raise ProtocolError("2xx without Contact")
    target = uri_of(ccontact)
    if routes and ";lr" not in routes[0]:
        raise ProtocolError("strict routing not supported: %s" % routes[0])
    via = lambda: "SIP/2.0/%s %s:%d;branch=%s;rport" % (tp, fmt_host(lip), lport, branch())
    ack = request("ACK", target, via(), frm, to_tagged, callid, 1, contact, routes)
    conn.send(ack)
    time.sleep(args.pause_ms / 1000.0)
    bye = request("BYE", target, via(), frm, to_tagged, callid, 2, contact, routes)
    conn.send(bye)
    deadline = time.monotonic() + args.timeout
    resend = time.monotonic() + 0.5
    while True:
        if args.transport == "udp" and time.monotonic() >= resend:
            conn.send(bye)
            resend = time.monotonic() + 1.0
        wait = min(deadline, resend) if args.transport == "udp" else deadline
        try:
            first, headers, _ = conn.recv(wait)
        except ProtocolError:
            if time.monotonic() < deadline:
                continue
            raise ProtocolError("no final response to the BYE within %ss" % args.timeout)
        bcode, _ = status_of(first)
        if bcode is None:
            continue
        cseq = hdr(headers, "cseq", "")
        if cseq.endswith("INVITE") and 200 <= bcode < 300:
            conn.send(ack)  # a retransmitted 2xx: ACK again
            continue
        if not cseq.endswith("BYE") or bcode < 200:
            continue
        print("BYE %d" % bcode, flush=True)
        return 0 if bcode == 200 else 2


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sbc", required=True, help="IP:PORT or [IPv6]:PORT")
    p.add_argument("--src", required=True, help="local source address")
    p.add_argument("--transport", default="tls", choices=("tls", "tcp", "udp"))
    p.add_argument("--ca", help="CA file to verify the SBC (none: no verification)")
    p.add_argument("--cert", help="client certificate (PEM)")
    p.add_argument("--key", help="client key (PEM)")
    p.add_argument("--tls12", action="store_true", help="TLS 1.2 only (default: up to 1.3)")
    p.add_argument("--srtp", action="store_true", help="offer RTP/SAVP with a=crypto")
    p.add_argument("--number", default="+12125550100")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per transaction")
    p.add_argument("--pause-ms", type=int, default=200, help="call length before BYE")
    args = p.parse_args()
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    try:
        return call(args)
    except TlsRejected as e:
        print("TLS-REJECTED %s" % e, flush=True)
        return 3
    except (ProtocolError, OSError, ValueError) as e:
        print("ERROR %s" % e, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())

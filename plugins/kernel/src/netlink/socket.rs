//! A blocking rtnetlink socket (netlink-sys + netlink-packet-route): no async runtime to start,
//! which keeps a once-per-container exec cheap.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::KernelError;
use crate::netns::Netns;

/// What [`RtnlSocket::answer`] does after one message.
pub(super) enum Next<T> {
    /// Wait for more messages.
    More,
    /// The answer is complete.
    Done(T),
}

/// A route-netlink socket bound to one network namespace.
#[derive(Debug)]
pub struct RtnlSocket {
    socket: Socket,
    seq: u32,
}

impl RtnlSocket {
    /// A socket in the calling thread's namespace.
    pub fn open() -> Result<RtnlSocket, KernelError> {
        let sock_err = |op| move |source| KernelError::Socket { op, source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(sock_err("create"))?;
        socket.bind_auto().map_err(sock_err("bind"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(sock_err("connect"))?;
        // Strict checking makes the kernel (4.20+) honour the filters in dump requests, so an
        // address dump for one link returns that link's addresses only instead of every
        // address on a host with a thousand veths. Older kernels refuse the option and dump
        // everything; callers filter the replies themselves either way.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(RtnlSocket { socket, seq: 0 })
    }

    /// A socket in `netns`: the thread enters the namespace only to create the socket, which
    /// stays bound to it; every later request runs from the caller's own namespace.
    pub fn open_in(netns: &Netns) -> Result<RtnlSocket, KernelError> {
        let _inside = netns.enter()?;
        Self::open()
    }

    /// Sends `msg` and collects the replies until ACK or end of dump. `flags` adds to
    /// NLM_F_REQUEST (e.g. NLM_F_ACK, NLM_F_DUMP, NLM_F_CREATE | NLM_F_EXCL).
    pub(super) fn request(
        &mut self,
        op: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, KernelError> {
        let seq = self.next_seq();
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf[..]);
        self.send_raw(&buf)?;

        let mut replies = Vec::new();
        let plain_get = flags & NLM_F_DUMP != NLM_F_DUMP && flags & NLM_F_ACK == 0;
        self.answer(op, seq, |bytes| {
            let reply: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(bytes)
                .map_err(|e| KernelError::Decode {
                    op,
                    detail: e.to_string(),
                })?;
            Ok(match reply.payload {
                NetlinkPayload::Done(_) => Next::Done(()),
                NetlinkPayload::Error(e) => match e.code {
                    None => Next::Done(()),
                    Some(code) => {
                        return Err(KernelError::Netlink {
                            op,
                            source: io::Error::from_raw_os_error(-code.get()),
                        });
                    }
                },
                NetlinkPayload::InnerMessage(m) => {
                    replies.push(m);
                    // A plain GET has exactly one answer and no ACK.
                    if plain_get {
                        Next::Done(())
                    } else {
                        Next::More
                    }
                }
                _ => Next::More,
            })
        })?;
        Ok(replies)
    }

    /// Receives the answer to request `seq`: hands each of its messages (header included) to
    /// `each` until that returns [`Next::Done`]; messages of other requests are skipped.
    pub(super) fn answer<T>(
        &mut self,
        op: &'static str,
        seq: u32,
        mut each: impl FnMut(&[u8]) -> Result<Next<T>, KernelError>,
    ) -> Result<T, KernelError> {
        loop {
            let data = self.recv_raw()?;
            let mut rest = &data[..];
            while !rest.is_empty() {
                let msg = NetlinkBuffer::new_checked(rest).map_err(|e| KernelError::Decode {
                    op,
                    detail: e.to_string(),
                })?;
                // Checked above: at least a header, at most what is left.
                let len = msg.length() as usize;
                if msg.sequence_number() == seq
                    && let Next::Done(value) = each(&rest[..len])?
                {
                    return Ok(value);
                }
                rest = &rest[((len + 3) & !3).min(rest.len())..];
            }
        }
    }

    /// The sequence number of the next request.
    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one framed request.
    pub(super) fn send_raw(&mut self, request: &[u8]) -> Result<(), KernelError> {
        self.socket
            .send(request, 0)
            .map(drop)
            .map_err(|source| KernelError::Socket { op: "send", source })
    }

    /// Receives one datagram of replies.
    fn recv_raw(&mut self) -> Result<Vec<u8>, KernelError> {
        self.socket
            .recv_from_full()
            .map(|(data, _)| data)
            .map_err(|source| KernelError::Socket { op: "recv", source })
    }
}

//! The real [`NfRules`]: nfnetlink requests on a blocking netlink socket (netlink-sys), framed
//! with netlink-packet-core.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use netlink_packet_core::{
    DefaultNla, Emitable, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL,
    NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable,
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;

use super::rule::{NftRule, RuleMessage};
use super::{Deletion, NfRules};
use crate::NetfilterError;
use crate::iptables::IpFamily;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const AF_UNSPEC: u8 = 0;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// How long to wait for the kernel's answer before calling the request failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn nfproto(family: IpFamily) -> u8 {
    match family {
        IpFamily::V4 => NFPROTO_IPV4,
        IpFamily::V6 => NFPROTO_IPV6,
    }
}

/// An nfnetlink message body: `nfgenmsg` (family, version 0, resource id) and attributes.
#[derive(Debug)]
struct Request {
    kind: u16,
    family: u8,
    res_id: u16,
    attrs: Vec<DefaultNla>,
}

impl Request {
    /// An nf_tables request (`NFT_MSG_*` `kind`) about `family`.
    fn nftables(kind: u16, family: IpFamily, attrs: Vec<DefaultNla>) -> Request {
        Request {
            kind: (NFNL_SUBSYS_NFTABLES << 8) | kind,
            family: nfproto(family),
            res_id: 0,
            attrs,
        }
    }
}

impl NetlinkSerializable for Request {
    fn message_type(&self) -> u16 {
        self.kind
    }

    fn buffer_len(&self) -> usize {
        4 + self.attrs.as_slice().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        buffer[0] = self.family;
        buffer[1] = 0;
        buffer[2..4].copy_from_slice(&self.res_id.to_be_bytes());
        self.attrs.as_slice().emit(&mut buffer[4..]);
    }
}

/// A reply: its message type and the attributes after `nfgenmsg`.
#[derive(Debug)]
struct Reply {
    kind: u16,
    attrs: Vec<u8>,
}

impl NetlinkDeserializable for Reply {
    type Error = io::Error;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        let attrs = payload.get(4..).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "nfnetlink message too short")
        })?;
        Ok(Reply {
            kind: header.message_type,
            attrs: attrs.to_vec(),
        })
    }
}

fn text(kind: u16, value: &str) -> DefaultNla {
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    DefaultNla::new(kind, bytes)
}

fn message(request: Request, flags: u16, seq: u32) -> Vec<u8> {
    let mut packet = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(request),
    );
    packet.header.flags = flags;
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

fn failed(op: &'static str) -> impl Fn(io::Error) -> NetfilterError {
    move |source| NetfilterError::Nfnl { op, source }
}

fn open(op: &'static str) -> Result<Socket, NetfilterError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(failed(op))?;
    socket.bind_auto().map_err(failed(op))?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(failed(op))?;
    let timeout = TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0);
    setsockopt(&socket, ReceiveTimeout, &timeout).map_err(|e| failed(op)(e.into()))?;
    Ok(socket)
}

/// Feed each message of each datagram to `each` until it says stop (`Some`).
fn receive<T>(
    socket: &Socket,
    op: &'static str,
    mut each: impl FnMut(NetlinkMessage<Reply>) -> Result<Option<T>, NetfilterError>,
) -> Result<T, NetfilterError> {
    loop {
        let (data, _) = socket.recv_from_full().map_err(failed(op))?;
        let mut offset = 0;
        while offset < data.len() {
            let msg = NetlinkMessage::<Reply>::deserialize(&data[offset..]).map_err(|e| {
                NetfilterError::NfnlDecode {
                    detail: e.to_string(),
                }
            })?;
            let len = msg.header.length as usize;
            if let Some(done) = each(msg)? {
                return Ok(done);
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

/// nf_tables over netlink in the calling thread's network namespace.
///
/// Requests share one socket per namespace: closing a netfilter netlink socket waits for the
/// kernel to finish freeing what recent transactions (anyone's) removed — an RCU grace period,
/// milliseconds — so a plugin pays that once, at exit, instead of once per request. A dump cut
/// short ([`NfRules::list`] with a limit) takes a socket of its own, closed half-way.
#[derive(Debug, Default)]
pub struct NfnlRules {
    shared: Mutex<Option<Shared>>,
}

/// The shared socket, the namespace it belongs to and the last sequence number used.
#[derive(Debug)]
struct Shared {
    socket: Socket,
    netns: (u64, u64),
    seq: u32,
}

/// (device, inode) of the calling thread's network namespace.
fn current_netns(op: &'static str) -> Result<(u64, u64), NetfilterError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/thread-self/ns/net").map_err(failed(op))?;
    Ok((meta.dev(), meta.ino()))
}

impl NfnlRules {
    /// Run `request` on the shared socket (opened in this thread's namespace when there is none
    /// for it yet) with `count` fresh sequence numbers starting at the one it is given. A
    /// failed request drops the socket: what it left unread must not meet the next one.
    fn with_socket<T>(
        &self,
        op: &'static str,
        count: u32,
        request: impl FnOnce(&Socket, u32) -> Result<T, NetfilterError>,
    ) -> Result<T, NetfilterError> {
        let netns = current_netns(op)?;
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if shared.as_ref().is_none_or(|s| s.netns != netns) {
            *shared = Some(Shared {
                socket: open(op)?,
                netns,
                seq: 0,
            });
        }
        let Some(conn) = shared.as_mut() else {
            unreachable!("set just above");
        };
        let first = conn.seq.wrapping_add(1).max(1);
        conn.seq = first.wrapping_add(count);
        let result = request(&conn.socket, first);
        if result.is_err() {
            *shared = None;
        }
        result
    }
}

impl NfRules for NfnlRules {
    fn list(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
        limit: Option<usize>,
    ) -> Result<Vec<NftRule>, NetfilterError> {
        const OP: &str = "list rules";
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let read = |socket: &Socket, seq: u32| {
            let attrs = vec![text(NFTA_RULE_TABLE, table), text(NFTA_RULE_CHAIN, chain)];
            ask(socket, OP, seq, NFT_MSG_GETRULE, family, attrs, NLM_F_DUMP)?;
            let mut rules = Vec::new();
            receive(socket, OP, |msg| {
                if msg.header.sequence_number != seq {
                    return Ok(None);
                }
                // The ruleset changed while the kernel was dumping it: the listing may have
                // missed or repeated rules, and nothing may be decided on it.
                if msg.header.flags & NLM_F_DUMP_INTR != 0 {
                    return Err(interrupted());
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => Ok(Some(())),
                    NetlinkPayload::Error(e) => end_of_reply(OP, e.code).map(Some),
                    NetlinkPayload::InnerMessage(reply)
                        if reply.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE =>
                    {
                        let parsed = RuleMessage::parse(&reply.attrs)?;
                        // Kernels that ignore the dump filter send every rule: keep ours only.
                        if parsed.table == table && parsed.chain == chain {
                            rules.push(parsed.rule);
                        }
                        Ok(limit.filter(|l| rules.len() >= *l).map(|_| ()))
                    }
                    _ => Ok(None),
                }
            })?;
            Ok(rules)
        };
        // Like iptables-nft, dump again when a change interrupted the dump, a few times.
        let mut attempt = 1;
        loop {
            let listed = match limit {
                // Stopping early leaves the rest of the dump coming: a socket of its own.
                Some(_) => read(&open(OP)?, 1),
                None => self.with_socket(OP, 1, read),
            };
            match listed {
                Err(e) if is_interrupted(&e) && attempt < DUMP_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    fn has_chain(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError> {
        const OP: &str = "look up a chain";
        self.with_socket(OP, 1, |socket, seq| {
            let attrs = vec![text(NFTA_CHAIN_TABLE, table), text(NFTA_CHAIN_NAME, chain)];
            ask(socket, OP, seq, NFT_MSG_GETCHAIN, family, attrs, NLM_F_ACK)?;
            let mut found = false;
            receive(socket, OP, |msg| {
                if msg.header.sequence_number != seq {
                    return Ok(None);
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(reply)
                        if reply.kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN =>
                    {
                        found = true;
                        Ok(None)
                    }
                    NetlinkPayload::Error(e) => end_of_reply(OP, e.code).map(Some),
                    _ => Ok(None),
                }
            })?;
            Ok(found)
        })
    }

    fn delete_all(
        &self,
        family: IpFamily,
        table: &str,
        steps: &[Deletion<'_>],
    ) -> Result<(), NetfilterError> {
        const OP: &str = "delete rules";
        if steps.is_empty() {
            return Ok(());
        }
        let messages: Vec<Step> = steps.iter().map(|step| deletion(table, step)).collect();
        self.with_socket(OP, steps.len() as u32 + 2, |socket, base| {
            transaction(socket, OP, base, family, messages)
        })
    }

    fn create_chain(
        &self,
        family: IpFamily,
        table: &str,
        chain: &str,
    ) -> Result<bool, NetfilterError> {
        const OP: &str = "create a chain";
        let attrs = vec![text(NFTA_CHAIN_TABLE, table), text(NFTA_CHAIN_NAME, chain)];
        let step = (NFT_MSG_NEWCHAIN, attrs, NLM_F_CREATE | NLM_F_EXCL);
        let created = self.with_socket(OP, 3, |socket, base| {
            transaction(socket, OP, base, family, vec![step])
        });
        match created {
            Ok(()) => Ok(true),
            Err(e) if e.nfnl_errno() == Some(Errno::EEXIST as i32) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// One message of a transaction: its `NFT_MSG_*` type, attributes and extra flags.
type Step = (u16, Vec<DefaultNla>, u16);

/// The message that performs `step` in `table`.
fn deletion(table: &str, step: &Deletion<'_>) -> Step {
    match *step {
        Deletion::Rule { chain, handle } => (
            NFT_MSG_DELRULE,
            vec![
                text(NFTA_RULE_TABLE, table),
                text(NFTA_RULE_CHAIN, chain),
                DefaultNla::new(NFTA_RULE_HANDLE, handle.to_be_bytes().to_vec()),
            ],
            0,
        ),
        // A rule deletion naming only the chain removes all of its rules.
        Deletion::Flush { chain } => (
            NFT_MSG_DELRULE,
            vec![text(NFTA_RULE_TABLE, table), text(NFTA_RULE_CHAIN, chain)],
            0,
        ),
        Deletion::Chain { chain } => (
            NFT_MSG_DELCHAIN,
            vec![text(NFTA_CHAIN_TABLE, table), text(NFTA_CHAIN_NAME, chain)],
            0,
        ),
    }
}

/// Send `steps` as one nf_tables batch (sequence numbers `base` to `base + steps + 1`) and
/// collect the kernel's answer to each step.
fn transaction(
    socket: &Socket,
    op: &'static str,
    base: u32,
    family: IpFamily,
    steps: Vec<Step>,
) -> Result<(), NetfilterError> {
    let batch = |kind| Request {
        kind,
        family: AF_UNSPEC,
        res_id: NFNL_SUBSYS_NFTABLES,
        attrs: Vec::new(),
    };
    let count = steps.len();
    let mut buf = message(batch(NFNL_MSG_BATCH_BEGIN), NLM_F_REQUEST, base);
    for (i, (kind, attrs, flags)) in steps.into_iter().enumerate() {
        let request = Request::nftables(kind, family, attrs);
        let seq = base + 1 + i as u32;
        buf.extend(message(request, NLM_F_REQUEST | NLM_F_ACK | flags, seq));
    }
    let end = base + 1 + count as u32;
    buf.extend(message(batch(NFNL_MSG_BATCH_END), NLM_F_REQUEST, end));
    socket.send(&buf, 0).map_err(failed(op))?;
    // The kernel answers every message that asked for an ACK (or failed) once the whole
    // transaction was committed or aborted.
    let mut answered = 0;
    let mut first_error = None;
    receive(socket, op, |msg| {
        let seq = msg.header.sequence_number;
        if let NetlinkPayload::Error(e) = msg.payload {
            if (base + 1..end).contains(&seq) {
                answered += 1;
                if let Some(code) = e.code {
                    first_error.get_or_insert(-code.get());
                }
            } else if (base..=end).contains(&seq)
                && let Some(code) = e.code
            {
                // The batch frame itself was refused.
                first_error.get_or_insert(-code.get());
                return Ok(Some(()));
            }
        }
        Ok((answered == count).then_some(()))
    })?;
    match first_error {
        None => Ok(()),
        Some(errno) => Err(NetfilterError::nfnl(op, errno)),
    }
}

/// How many times a dump interrupted by a concurrent change is started again.
const DUMP_ATTEMPTS: usize = 3;

fn interrupted() -> NetfilterError {
    NetfilterError::nfnl("list rules", Errno::EINTR as i32)
}

fn is_interrupted(e: &NetfilterError) -> bool {
    e.nfnl_errno() == Some(Errno::EINTR as i32)
}

/// The end of a read: an ACK, or "no such table or chain" (nothing to read); any other errno
/// is the request's failure.
fn end_of_reply(
    op: &'static str,
    code: Option<std::num::NonZeroI32>,
) -> Result<(), NetfilterError> {
    match code {
        None => Ok(()),
        Some(code) if -code.get() == Errno::ENOENT as i32 => Ok(()),
        Some(code) => Err(NetfilterError::nfnl(op, -code.get())),
    }
}

/// Send one `kind` request about `family` with sequence number `seq` on `socket`.
fn ask(
    socket: &Socket,
    op: &'static str,
    seq: u32,
    kind: u16,
    family: IpFamily,
    attrs: Vec<DefaultNla>,
    flags: u16,
) -> Result<(), NetfilterError> {
    let request = Request::nftables(kind, family, attrs);
    socket
        .send(&message(request, NLM_F_REQUEST | flags, seq), 0)
        .map_err(failed(op))?;
    Ok(())
}

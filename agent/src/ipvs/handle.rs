//! The async IPVS handle: one long-lived generic-netlink connection (a netlink-proto task),
//! requests matched to replies by sequence number.
//!
//! - Writes carry `NLM_F_ACK`; [`IpvsHandle::apply`] sends many of them in one datagram, so
//!   a batch costs one `sendmsg` and its acks are matched per request.
//! - The kernel runs at most one dump per socket at a time (a second one started while the
//!   first has not ended fails with EBUSY), so dumps are queued in order behind each other
//!   while writes and single reads keep flowing around them.
//! - The whole table's per-service destination dumps go to [`DUMP_SOCKETS`] more sockets,
//!   several at once ([`pipelined`]), so reading the table is not one dump after another.
//! - The sockets are opened by [`IpvsHandle::new`] on the thread that first polls it and
//!   belong to that thread's network namespace for their whole life, whichever thread later
//!   drives the connections.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::join_all;
use futures::{Stream, StreamExt, TryStreamExt};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;
use netlink_proto::ConnectionHandle;
use netlink_proto::sys::protocols::NETLINK_GENERIC;
use netlink_proto::sys::{AsyncSocket, SocketAddr};
use tokio::sync::Mutex;

use super::cmd::Cmd;
use super::conn::{CONN_TABLE, Connection, parse_table};
use super::errno::kernel_error;
use super::error::IpvsError;
use super::family::resolve_family_id;
use super::frame::Frame;
use super::message::IpvsMessage;
use super::module::{ModuleError, modprobe, scheduler_module};
use super::op::IpvsOp;
use super::pipeline::pipelined;
use super::types::{
    Daemon, DaemonState, Destination, DestinationEntry, Info, Service, ServiceEntry, ServiceKey,
    Timeouts,
};
use super::{IpvsOps, TableRow};

pub(super) type Msg = NetlinkMessage<GenlMessage<Frame>>;

/// Requested socket receive buffer. The kernel caps it at `net.core.rmem_max` (and doubles
/// it); batches are sized so that their acks fit even the default.
pub const RX_BUF_BYTES: usize = 4 << 20;

/// Writes per datagram in [`IpvsHandle::apply`]: their acks (one small skb each, under 1 KiB
/// of receive-buffer charge) must fit the receive buffer before they are read, or the kernel
/// drops them (ENOBUFS) and the batch would never complete.
pub const BATCH: usize = 128;

/// Sockets, besides the main one, that read the whole table's destination dumps, one
/// service each at a time. The kernel runs one dump per socket, so with one socket every
/// service costs a full round trip through the agent before the next dump may start; a few
/// sockets keep the kernel busy meanwhile. More would mostly add file descriptors: the
/// dumps still share the kernel's IPVS lock and the agent's cores.
pub const DUMP_SOCKETS: usize = 4;

/// A socket that runs dumps, one at a time.
#[derive(Debug, Clone)]
struct DumpSocket {
    conn: ConnectionHandle<GenlMessage<Frame>>,
    /// Held for the whole life of a dump: one dump per socket.
    turn: Arc<Mutex<()>>,
}

/// A handle to the kernel's IPVS table; cheap to clone (clones share the connections).
#[derive(Debug, Clone)]
pub struct IpvsHandle {
    /// Writes, single reads and the dumps of single things (services, one service's
    /// destinations, daemons).
    main: DumpSocket,
    /// The whole table's destination dumps: [`DUMP_SOCKETS`] of them.
    pool: Arc<[DumpSocket]>,
    family_id: u16,
    /// The connection table file ([`CONN_TABLE`] unless told otherwise).
    conn_table: Arc<PathBuf>,
}

fn kernel_addr() -> SocketAddr {
    SocketAddr::new(0, 0)
}

fn closed(e: impl std::fmt::Display) -> IpvsError {
    IpvsError::Netlink(format!("connection: {e}"))
}

impl IpvsHandle {
    /// Resolves the "IPVS" family and starts the connection task on the current tokio
    /// runtime. `Unavailable` if the kernel has no IPVS.
    ///
    /// Every socket is opened as soon as the future is first polled, before it yields, so
    /// they belong to the network namespace of the thread that polls it: the caller's own
    /// under `block_on` or `#[tokio::main]`, not necessarily under `tokio::spawn`.
    pub async fn new() -> Result<Self, IpvsError> {
        Self::open()
    }

    fn open() -> Result<Self, IpvsError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| IpvsError::Netlink("IpvsHandle::new needs a tokio runtime".into()))?;
        let family_id = resolve_family_id()?;
        let main = connect(&runtime, true)?;
        let pool = (0..DUMP_SOCKETS)
            .map(|_| connect(&runtime, false))
            .collect::<Result<_, _>>()?;
        Ok(IpvsHandle {
            main,
            pool,
            family_id,
            conn_table: Arc::new(PathBuf::from(CONN_TABLE)),
        })
    }

    /// Reads the connection table from `path` instead of [`CONN_TABLE`].
    pub fn with_conn_table(mut self, path: impl Into<PathBuf>) -> Self {
        self.conn_table = Arc::new(path.into());
        self
    }

    /// The generic-netlink family id the kernel gave "IPVS".
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    fn frame(&self, msg: &IpvsMessage, flags: u16) -> Msg {
        let mut genl = GenlMessage::from_payload(Frame::from_message(msg));
        genl.set_resolved_family_id(self.family_id);
        let mut nl = NetlinkMessage::from(genl);
        nl.header.flags = flags;
        nl
    }

    /// One write, acknowledged. `service` names what ENOENT would be about.
    async fn ack(&self, msg: IpvsMessage, service: Option<&Service>) -> Result<(), IpvsError> {
        let cmd = msg.cmd;
        let replies: Vec<Msg> = self
            .main
            .conn
            .request(self.frame(&msg, NLM_F_REQUEST | NLM_F_ACK), kernel_addr())
            .map_err(closed)?
            .collect()
            .await;
        for reply in replies {
            if let NetlinkPayload::Error(e) = reply.payload {
                return match e.code {
                    None => Ok(()),
                    Some(code) => Err(kernel_error(cmd, -code.get(), service)),
                };
            }
        }
        Err(IpvsError::Netlink(format!(
            "{}: no acknowledgement",
            cmd.op()
        )))
    }

    /// One request answered by one message (`GET_INFO`, `GET_CONFIG`, single `GET_SERVICE`).
    async fn get(&self, msg: IpvsMessage) -> Result<IpvsMessage, IpvsError> {
        let cmd = msg.cmd;
        let replies: Vec<Msg> = self
            .main
            .conn
            .request(self.frame(&msg, NLM_F_REQUEST), kernel_addr())
            .map_err(closed)?
            .collect()
            .await;
        let mut out = None;
        for reply in replies {
            if let Some(m) = read(cmd, reply)? {
                out.get_or_insert(m);
            }
        }
        out.ok_or_else(|| IpvsError::Netlink(format!("{}: no reply", cmd.op())))
    }

    /// A dump on the main socket.
    async fn dump(&self, msg: IpvsMessage) -> Result<Vec<IpvsMessage>, IpvsError> {
        self.dump_on(&self.main, msg).await
    }

    /// A dump on `socket`. It runs in its own task so that a caller giving up half-way cannot
    /// release the socket while the kernel is still dumping (the next dump would fail with
    /// EBUSY).
    async fn dump_on(
        &self,
        socket: &DumpSocket,
        msg: IpvsMessage,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let cmd = msg.cmd;
        let request = self.frame(&msg, NLM_F_REQUEST | NLM_F_DUMP);
        let conn = socket.conn.clone();
        let queue = socket.turn.clone();
        let replies = tokio::spawn(async move {
            let _turn = queue.lock_owned().await;
            let stream = conn.request(request, kernel_addr()).map_err(closed)?;
            Ok::<Vec<Msg>, IpvsError>(stream.collect().await)
        })
        .await
        .map_err(|e| IpvsError::Netlink(format!("{}: {e}", cmd.op())))??;
        let mut out = Vec::with_capacity(replies.len());
        for reply in replies {
            if let Some(m) = read(cmd, reply)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn dests_of(&self, key: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        self.dests_on(&self.main, key).await
    }

    async fn dests_on(
        &self,
        socket: &DumpSocket,
        key: &ServiceKey,
    ) -> Result<Vec<DestinationEntry>, IpvsError> {
        let family = key.family();
        self.dump_on(socket, IpvsMessage::get_dests(key))
            .await?
            .iter()
            .map(|m| {
                m.to_destination_entry(family)
                    .map_err(|e| unreadable(Cmd::GetDest, e))
            })
            .collect()
    }

    /// Applies many writes, pipelined: [`BATCH`] per datagram, each acknowledged on its own.
    /// Every write is attempted (a failure does not stop the ones after it); the results come
    /// back in order, one per write.
    pub async fn apply(&self, ops: &[IpvsOp]) -> Vec<Result<(), IpvsError>> {
        join_all(ops.chunks(BATCH).map(|chunk| self.apply_batch(chunk)))
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn apply_batch(&self, ops: &[IpvsOp]) -> Vec<Result<(), IpvsError>> {
        let requests: Vec<Msg> = ops
            .iter()
            .map(|op| self.frame(&op.message(), NLM_F_REQUEST | NLM_F_ACK))
            .collect();
        let replies: Vec<Msg> = match self.main.conn.request_batch(requests, kernel_addr()) {
            Ok(stream) => stream.collect().await,
            Err(e) => return vec![Err(closed(e)); ops.len()],
        };
        match match_acks(ops.len(), &replies) {
            Ok(codes) => ops
                .iter()
                .zip(codes)
                .map(|(op, code)| match code {
                    None => Ok(()),
                    Some(errno) => Err(kernel_error(op.cmd(), errno, op.service())),
                })
                .collect(),
            Err(e) => vec![Err(e); ops.len()],
        }
    }
}

/// A generic-netlink connection driven by a task on `runtime`. The main socket (`main`)
/// sees acks, to match batched writes, and gets a larger receive buffer to hold them.
fn connect(runtime: &tokio::runtime::Handle, main: bool) -> Result<DumpSocket, IpvsError> {
    let (mut conn, handle, mut unsolicited) =
        netlink_proto::new_connection::<GenlMessage<Frame>>(NETLINK_GENERIC)
            .map_err(|e| IpvsError::Netlink(format!("open generic netlink socket: {e}")))?;
    if main {
        conn.set_forward_ack(true);
        let rx_buf = libc::c_int::try_from(RX_BUF_BYTES).unwrap_or(libc::c_int::MAX);
        if let Err(e) = conn.socket_mut().socket_mut().set_rx_buf_sz(rx_buf) {
            tracing::warn!("IPVS socket: cannot set the receive buffer: {e}");
        }
    }
    runtime.spawn(conn);
    runtime.spawn(async move {
        while let Some((msg, _)) = unsolicited.next().await {
            if let NetlinkPayload::Overrun(_) = msg.payload {
                tracing::error!("IPVS socket: receive buffer overrun, replies were lost");
            }
        }
    });
    Ok(DumpSocket {
        conn: handle,
        turn: Arc::new(Mutex::new(())),
    })
}

/// The connection table at `path`. A missing file means the kernel has no IPVS (the file
/// exists in every network namespace once `ip_vs` is loaded).
pub async fn read_conn_table(path: &Path) -> Result<Vec<Connection>, IpvsError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IpvsError::Unavailable);
        }
        Err(e) => {
            return Err(IpvsError::ConnTable(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    parse_table(&text).map_err(|e| IpvsError::ConnTable(e.to_string()))
}

fn unreadable(cmd: Cmd, e: impl std::fmt::Display) -> IpvsError {
    IpvsError::Netlink(format!("{}: unreadable reply: {e}", cmd.op()))
}

/// One reply: a message, nothing (ack, end of dump), or the kernel's refusal.
pub(super) fn read(cmd: Cmd, reply: Msg) -> Result<Option<IpvsMessage>, IpvsError> {
    match reply.payload {
        NetlinkPayload::InnerMessage(genl) => genl
            .payload
            .parse()
            .map(Some)
            .map_err(|e| unreadable(cmd, e)),
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(None),
            Some(code) => Err(kernel_error(cmd, -code.get(), None)),
        },
        NetlinkPayload::Overrun(_) => Err(IpvsError::Netlink(format!(
            "{}: receive buffer overrun",
            cmd.op()
        ))),
        _ => Ok(None),
    }
}

/// The errno (None for success) of each of `count` batched writes. The kernel handles a
/// datagram's messages in order and acks each, so the acks arrive in request order with
/// consecutive sequence numbers; anything else is reported rather than guessed at.
fn match_acks(count: usize, replies: &[Msg]) -> Result<Vec<Option<i32>>, IpvsError> {
    let acks: Vec<(u32, Option<i32>)> = replies
        .iter()
        .filter_map(|m| match &m.payload {
            NetlinkPayload::Error(e) => Some((m.header.sequence_number, e.code.map(|c| -c.get()))),
            _ => None,
        })
        .collect();
    let in_order = acks.windows(2).all(|w| w[1].0 == w[0].0.wrapping_add(1));
    if acks.len() != count || !in_order {
        return Err(IpvsError::Netlink(format!(
            "batch: {} acknowledgements for {count} requests; the table's state is unknown",
            acks.len()
        )));
    }
    Ok(acks.into_iter().map(|(_, code)| code).collect())
}

impl IpvsOps for IpvsHandle {
    async fn info(&self) -> Result<Info, IpvsError> {
        self.get(IpvsMessage::get_info())
            .await?
            .to_info()
            .map_err(|e| unreadable(Cmd::GetInfo, e))
    }

    async fn services(&self) -> Result<Vec<ServiceEntry>, IpvsError> {
        self.dump(IpvsMessage::get_services())
            .await?
            .iter()
            .map(|m| {
                m.to_service_entry()
                    .map_err(|e| unreadable(Cmd::GetService, e))
            })
            .collect()
    }

    async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, IpvsError> {
        self.get(IpvsMessage::get_service(key))
            .await?
            .to_service_entry()
            .map_err(|e| unreadable(Cmd::GetService, e))
    }

    /// The kernel answers a destination dump of a missing service with an empty list, so a
    /// `GET_SERVICE` goes along (pipelined, not after) to tell the two apart.
    async fn destinations(&self, key: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        let (service, dests) = futures::join!(self.service(key), self.dests_of(key));
        service?;
        dests
    }

    async fn table(&self) -> Result<Vec<(ServiceEntry, Vec<DestinationEntry>)>, IpvsError> {
        self.table_stream().try_collect().await
    }

    /// The services dump, then the services' destination dumps [`DUMP_SOCKETS`] at a time,
    /// one per pool socket; the services come out in the dump's order.
    fn table_stream(&self) -> impl Stream<Item = Result<TableRow, IpvsError>> + Send + '_ {
        futures::stream::once(self.services())
            .map_ok(move |services| {
                pipelined(services, self.pool.len(), move |slot, entry| async move {
                    let dests = self.dests_on(&self.pool[slot], &entry.service.key).await?;
                    Ok((entry, dests))
                })
            })
            .try_flatten()
    }

    async fn new_service(&self, svc: &Service) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::new_service(svc), Some(svc)).await
    }

    async fn set_service(&self, svc: &Service) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::set_service(svc), Some(svc)).await
    }

    async fn del_service(&self, key: &ServiceKey) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::del_service(key), None).await
    }

    async fn new_dest(&self, key: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::new_dest(key, dest), None).await
    }

    async fn set_dest(&self, key: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::set_dest(key, dest), None).await
    }

    async fn del_dest(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::del_dest(key, addr, port), None).await
    }

    async fn flush(&self) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::flush(), None).await
    }

    async fn zero(&self, key: Option<&ServiceKey>) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::zero(key), None).await
    }

    async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        Ok(self.get(IpvsMessage::get_config()).await?.to_timeouts())
    }

    async fn set_timeouts(&self, t: &Timeouts) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::set_config(t), None).await
    }

    async fn daemons(&self) -> Result<Vec<Daemon>, IpvsError> {
        self.dump(IpvsMessage::get_daemons())
            .await?
            .iter()
            .map(|m| m.to_daemon().map_err(|e| unreadable(Cmd::GetDaemon, e)))
            .collect()
    }

    async fn new_daemon(&self, d: &Daemon) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::new_daemon(d), None).await
    }

    async fn del_daemon(&self, state: DaemonState) -> Result<(), IpvsError> {
        self.ack(IpvsMessage::del_daemon(state), None).await
    }

    async fn connections(&self) -> Result<Vec<Connection>, IpvsError> {
        read_conn_table(&self.conn_table).await
    }

    async fn load_scheduler(&self, name: &str) -> Result<(), ModuleError> {
        modprobe(&scheduler_module(name)).await
    }

    /// Pipelined: see [`IpvsHandle::apply`].
    async fn apply(&self, ops: &[IpvsOp]) -> Vec<Result<(), IpvsError>> {
        IpvsHandle::apply(self, ops).await
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroI32;

    use netlink_packet_core::{ErrorMessage, NetlinkHeader};
    use netlink_packet_generic::GenlHeader;

    use super::*;

    fn ack(seq: u32, errno: i32) -> Msg {
        let mut e = ErrorMessage::default();
        e.code = NonZeroI32::new(-errno);
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        NetlinkMessage::new(header, NetlinkPayload::Error(e))
    }

    fn inner(cmd: u8, payload: Vec<u8>) -> Msg {
        let frame = Frame {
            header: GenlHeader { cmd, version: 1 },
            payload,
        };
        NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(GenlMessage::from_parts(frame.header, frame)),
        )
    }

    #[test]
    fn acks_are_matched_in_order() {
        let replies = [ack(10, 0), ack(11, libc::EEXIST), ack(12, 0)];
        assert_eq!(
            match_acks(3, &replies),
            Ok(vec![None, Some(libc::EEXIST), None])
        );
        // Sequence numbers may wrap.
        assert_eq!(
            match_acks(2, &[ack(u32::MAX, 0), ack(0, libc::ESRCH)]),
            Ok(vec![None, Some(libc::ESRCH)])
        );
    }

    #[test]
    fn lost_or_reordered_acks_are_reported() {
        let lost = "batch: 2 acknowledgements for 3 requests; the table's state is unknown";
        assert_eq!(
            match_acks(3, &[ack(10, 0), ack(11, 0)]),
            Err(IpvsError::Netlink(lost.into()))
        );
        let swapped = "batch: 2 acknowledgements for 2 requests; the table's state is unknown";
        assert_eq!(
            match_acks(2, &[ack(11, 0), ack(10, 0)]),
            Err(IpvsError::Netlink(swapped.into()))
        );
    }

    /// The kernel's captured refusals of ipvsadm's daemon commands.
    #[test]
    fn captured_refusals() {
        use crate::ipvs::tests::captured::{DEL_DAEMON_ESRCH, NEW_DAEMON_EINVAL};
        let msg = |bytes: &[u8]| Msg::deserialize(bytes).expect("netlink message");
        assert_eq!(
            read(Cmd::NewDaemon, msg(NEW_DAEMON_EINVAL)),
            Err(IpvsError::Kernel {
                op: "start daemon",
                errno: libc::EINVAL,
                message: "Invalid argument".into(),
            })
        );
        assert_eq!(
            read(Cmd::DelDaemon, msg(DEL_DAEMON_ESRCH)),
            Err(IpvsError::DaemonNotRunning)
        );
    }

    #[tokio::test]
    async fn connection_table_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ip_vs_conn");
        assert_eq!(
            read_conn_table(&path).await,
            Err(IpvsError::Unavailable),
            "no file: no IPVS"
        );
        std::fs::write(
            &path,
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
             TCP 0A000009 A000 0A000001 0050 0A000101 0050 ESTABLISHED     899\n",
        )
        .expect("write table");
        let table = read_conn_table(&path).await.expect("table");
        assert_eq!(
            table
                .iter()
                .map(|c| c.client.to_string())
                .collect::<Vec<_>>(),
            vec!["10.0.0.9:40960"]
        );
        std::fs::write(&path, "TCP 0A000009\n").expect("write table");
        assert_eq!(
            read_conn_table(&path).await,
            Err(IpvsError::ConnTable(
                "line 1 of the connection table: no client port: \"TCP 0A000009\"".into()
            ))
        );
    }

    #[test]
    fn replies_are_read_or_refused() {
        // An info reply.
        let info = [8, 0, 1, 0, 1, 2, 1, 0].to_vec();
        assert_eq!(
            read(Cmd::GetInfo, inner(14, info))
                .ok()
                .flatten()
                .map(|m| m.cmd),
            Some(Cmd::SetInfo)
        );
        // An ack carries nothing; a refusal is the kernel's word for this command.
        assert_eq!(read(Cmd::Flush, ack(1, 0)), Ok(None));
        assert_eq!(
            read(Cmd::GetService, ack(1, libc::ESRCH)),
            Err(IpvsError::ServiceNotFound)
        );
        // A reply this build cannot parse fails its request.
        assert_eq!(
            read(Cmd::GetInfo, inner(14, vec![8, 0, 1, 0, 1])),
            Err(IpvsError::Netlink(
                "get info: unreadable reply: failed to parse IPVS SetInfo attributes caused by \
                 buffer has length: 5, but the NLA is 8 bytes"
                    .into()
            ))
        );
        let overrun =
            NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::Overrun(vec![]));
        assert_eq!(
            read(Cmd::GetDest, overrun),
            Err(IpvsError::Netlink(
                "get destinations: receive buffer overrun".into()
            ))
        );
    }
}

//! Constants of the kernel's IPVS interface, declared once and named exactly as
//! `include/uapi/linux/ip_vs.h` names them, so the agent and ipvsctl cannot drift apart.

/// Persistent port.
pub const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
/// Hashed entry; set by the kernel, never by a client.
pub const IP_VS_SVC_F_HASHED: u32 = 0x0002;
/// One-packet scheduling.
pub const IP_VS_SVC_F_ONEPACKET: u32 = 0x0004;
/// Scheduler flag 1.
pub const IP_VS_SVC_F_SCHED1: u32 = 0x0008;
/// Scheduler flag 2.
pub const IP_VS_SVC_F_SCHED2: u32 = 0x0010;
/// Scheduler flag 3.
pub const IP_VS_SVC_F_SCHED3: u32 = 0x0020;
/// Source hashing: fall back to another server when the chosen one is unavailable.
pub const IP_VS_SVC_F_SCHED_SH_FALLBACK: u32 = IP_VS_SVC_F_SCHED1;
/// Source hashing: hash the port as well as the address.
pub const IP_VS_SVC_F_SCHED_SH_PORT: u32 = IP_VS_SVC_F_SCHED2;

/// Sync daemon roles.
pub const IP_VS_STATE_NONE: u32 = 0x0000;
pub const IP_VS_STATE_MASTER: u32 = 0x0001;
pub const IP_VS_STATE_BACKUP: u32 = 0x0002;

/// The forwarding method bits of a real server's connection flags.
pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
pub const IP_VS_CONN_F_MASQ: u32 = 0x0000;
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003;

/// Tunnel encapsulation of a tunnel-mode real server.
pub const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;

/// Tunnel checksum flags.
pub const IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM: u16 = 0;
pub const IP_VS_TUNNEL_ENCAP_FLAG_CSUM: u16 = 1 << 0;
pub const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: u16 = 1 << 1;

/// Buffer sizes of names, each including the trailing NUL.
pub const IP_VS_SCHEDNAME_MAXLEN: usize = 16;
pub const IP_VS_PENAME_MAXLEN: usize = 16;
pub const IP_VS_IFNAME_MAXLEN: usize = 16;

//! IPVS generic-netlink commands (`IPVS_CMD_*` in `include/uapi/linux/ip_vs.h`).

use netlink_packet_core::DecodeError;

pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_NEW_DAEMON: u8 = 9;
pub const IPVS_CMD_DEL_DAEMON: u8 = 10;
pub const IPVS_CMD_GET_DAEMON: u8 = 11;
pub const IPVS_CMD_SET_CONFIG: u8 = 12;
pub const IPVS_CMD_GET_CONFIG: u8 = 13;
pub const IPVS_CMD_SET_INFO: u8 = 14;
pub const IPVS_CMD_GET_INFO: u8 = 15;
pub const IPVS_CMD_ZERO: u8 = 16;
pub const IPVS_CMD_FLUSH: u8 = 17;

/// One IPVS command. Replies reuse the "new"/"set" commands: a service dump answers with
/// `NewService`, `GetInfo` with `SetInfo`, `GetConfig` with `SetConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    NewService,
    SetService,
    DelService,
    GetService,
    NewDest,
    SetDest,
    DelDest,
    GetDest,
    NewDaemon,
    DelDaemon,
    GetDaemon,
    SetConfig,
    GetConfig,
    SetInfo,
    GetInfo,
    Zero,
    Flush,
}

impl Cmd {
    /// What the command does, in the words ipvsadm's error messages use.
    pub fn op(self) -> &'static str {
        match self {
            Cmd::NewService => "add service",
            Cmd::SetService => "edit service",
            Cmd::DelService => "delete service",
            Cmd::GetService => "get service",
            Cmd::NewDest => "add destination",
            Cmd::SetDest => "edit destination",
            Cmd::DelDest => "delete destination",
            Cmd::GetDest => "get destinations",
            Cmd::NewDaemon => "start daemon",
            Cmd::DelDaemon => "stop daemon",
            Cmd::GetDaemon => "get daemons",
            Cmd::SetConfig => "set timeouts",
            Cmd::GetConfig => "get timeouts",
            Cmd::SetInfo => "set info",
            Cmd::GetInfo => "get info",
            Cmd::Zero => "zero counters",
            Cmd::Flush => "flush",
        }
    }
}

impl From<Cmd> for u8 {
    fn from(cmd: Cmd) -> u8 {
        match cmd {
            Cmd::NewService => IPVS_CMD_NEW_SERVICE,
            Cmd::SetService => IPVS_CMD_SET_SERVICE,
            Cmd::DelService => IPVS_CMD_DEL_SERVICE,
            Cmd::GetService => IPVS_CMD_GET_SERVICE,
            Cmd::NewDest => IPVS_CMD_NEW_DEST,
            Cmd::SetDest => IPVS_CMD_SET_DEST,
            Cmd::DelDest => IPVS_CMD_DEL_DEST,
            Cmd::GetDest => IPVS_CMD_GET_DEST,
            Cmd::NewDaemon => IPVS_CMD_NEW_DAEMON,
            Cmd::DelDaemon => IPVS_CMD_DEL_DAEMON,
            Cmd::GetDaemon => IPVS_CMD_GET_DAEMON,
            Cmd::SetConfig => IPVS_CMD_SET_CONFIG,
            Cmd::GetConfig => IPVS_CMD_GET_CONFIG,
            Cmd::SetInfo => IPVS_CMD_SET_INFO,
            Cmd::GetInfo => IPVS_CMD_GET_INFO,
            Cmd::Zero => IPVS_CMD_ZERO,
            Cmd::Flush => IPVS_CMD_FLUSH,
        }
    }
}

impl TryFrom<u8> for Cmd {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Ok(match value {
            IPVS_CMD_NEW_SERVICE => Cmd::NewService,
            IPVS_CMD_SET_SERVICE => Cmd::SetService,
            IPVS_CMD_DEL_SERVICE => Cmd::DelService,
            IPVS_CMD_GET_SERVICE => Cmd::GetService,
            IPVS_CMD_NEW_DEST => Cmd::NewDest,
            IPVS_CMD_SET_DEST => Cmd::SetDest,
            IPVS_CMD_DEL_DEST => Cmd::DelDest,
            IPVS_CMD_GET_DEST => Cmd::GetDest,
            IPVS_CMD_NEW_DAEMON => Cmd::NewDaemon,
            IPVS_CMD_DEL_DAEMON => Cmd::DelDaemon,
            IPVS_CMD_GET_DAEMON => Cmd::GetDaemon,
            IPVS_CMD_SET_CONFIG => Cmd::SetConfig,
            IPVS_CMD_GET_CONFIG => Cmd::GetConfig,
            IPVS_CMD_SET_INFO => Cmd::SetInfo,
            IPVS_CMD_GET_INFO => Cmd::GetInfo,
            IPVS_CMD_ZERO => Cmd::Zero,
            IPVS_CMD_FLUSH => Cmd::Flush,
            other => return Err(DecodeError::from(format!("unknown IPVS command {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_uapi_and_round_trip() {
        let all = [
            (Cmd::NewService, 1),
            (Cmd::SetService, 2),
            (Cmd::DelService, 3),
            (Cmd::GetService, 4),
            (Cmd::NewDest, 5),
            (Cmd::SetDest, 6),
            (Cmd::DelDest, 7),
            (Cmd::GetDest, 8),
            (Cmd::NewDaemon, 9),
            (Cmd::DelDaemon, 10),
            (Cmd::GetDaemon, 11),
            (Cmd::SetConfig, 12),
            (Cmd::GetConfig, 13),
            (Cmd::SetInfo, 14),
            (Cmd::GetInfo, 15),
            (Cmd::Zero, 16),
            (Cmd::Flush, 17),
        ];
        for (cmd, n) in all {
            assert_eq!(u8::from(cmd), n);
            assert_eq!(Cmd::try_from(n).ok(), Some(cmd));
        }
    }

    #[test]
    fn unknown_commands_are_refused() {
        for n in [0u8, 18, 255] {
            let err = Cmd::try_from(n).expect_err("not a command");
            assert_eq!(err.to_string(), format!("unknown IPVS command {n}"));
        }
    }
}

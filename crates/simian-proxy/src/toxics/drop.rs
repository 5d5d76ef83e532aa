//! `drop` (HTTP mode only, an extension): the connection is closed without an answer, before
//! the request reaches the upstream (stream `upstream`) or after the upstream answered
//! (stream `downstream`). `"reset": true` closes with a TCP RST instead of a FIN.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropConn {
    pub reset: bool,
}

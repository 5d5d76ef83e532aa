//! The embedded lab: regions, zones and instances as real processes behind per-region edge routers.
#![forbid(unsafe_code)]

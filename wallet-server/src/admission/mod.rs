//! Admission control: what the server takes on, and what it turns away quickly instead.

pub mod gate;
pub mod limiter;
pub mod wait_estimate;
pub mod waiting_room;

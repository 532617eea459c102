//! One file per hook. Each signal has several hooks (best first); the agent attaches one of them.

mod accept;
mod buffer;
mod drops;
mod egress;
mod floor;
mod packet;
mod peer_window;
mod probe0;
mod rcv_space;
mod reads;
mod set_state;
mod wanted;
mod window;

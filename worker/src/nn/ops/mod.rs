//! The standalone ops: batch norm (+ ReLU), pooling, channel concatenation, linear
//! (+ ReLU) and softmax cross-entropy, each a candle custom op with its own backward.

mod batch_norm;
mod concat;
mod linear;
mod loss;
mod pooling;

pub use batch_norm::batch_norm;
pub use concat::concat_channels;
pub use linear::linear;
pub use loss::cross_entropy;
pub use pooling::{global_avg_pool, pool2x2};

//! The transform a job applies to its images after loading: grayscale, resize, pad,
//! channel count, normalization. The campaign's `[transform]` table sets it.

use serde::{Deserialize, Serialize};

/// What the worker does to every image of both splits after loading (and after the
/// dataset fingerprint), in this order: channels (grayscale or 1→3), resize, pad.
///
/// The default is the identity: campaigns without `[transform]` are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataTransform {
    /// Turn 3-channel images into 1 channel by ITU-R BT.601 luma
    /// (`0.299 R + 0.587 G + 0.114 B`, rounded).
    #[serde(default)]
    pub grayscale: bool,
    /// Resize every image to a square of this side (bilinear), before padding.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Zero pixels added on each side, after resizing.
    #[serde(default)]
    pub pad: u32,
    /// Channels the images must end with: 1 (3 → 1 is grayscale) or 3 (1 → 3 repeats the
    /// grey channel).
    #[serde(default)]
    pub channels: Option<u32>,
    /// Whether the nets should standardise inputs with the training split's per-channel
    /// mean and standard deviation.
    #[serde(default)]
    pub normalize: bool,
}

impl DataTransform {
    /// Whether the transform changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == DataTransform::default()
    }

    /// The channel count images end with, given the count they have (`grayscale` and
    /// `channels` applied).
    pub fn output_channels(&self, input_channels: u32) -> u32 {
        match self.channels {
            Some(channels) => channels,
            None if self.grayscale => 1,
            None => input_channels,
        }
    }

    /// A short label for reports: `gray resize=28 pad=2 channels=3 norm`, empty for the
    /// identity.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.grayscale {
            parts.push("gray".to_string());
        }
        if let Some(side) = self.resize {
            parts.push(format!("resize={side}"));
        }
        if self.pad > 0 {
            parts.push(format!("pad={}", self.pad));
        }
        if let Some(channels) = self.channels {
            parts.push(format!("channels={channels}"));
        }
        if self.normalize {
            parts.push("norm".to_string());
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_identity_with_an_empty_label() {
        let identity = DataTransform::default();
        assert!(identity.is_identity());
        assert_eq!(identity.label(), "");
        assert_eq!(identity.output_channels(3), 3);
    }

    #[test]
    fn label_lists_what_is_set() {
        let transform = DataTransform {
            grayscale: true,
            resize: Some(28),
            pad: 2,
            channels: None,
            normalize: true,
        };
        assert_eq!(transform.label(), "gray resize=28 pad=2 norm");
        assert_eq!(transform.output_channels(3), 1);
    }

    #[test]
    fn missing_keys_default() {
        let transform: DataTransform = serde_json::from_str(r#"{"resize": 32}"#).unwrap();
        assert_eq!(transform.resize, Some(32));
        assert!(!transform.grayscale);
    }
}

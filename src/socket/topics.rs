//! The list of topics a socket is in, without a heap block for the usual
//! case of one topic (or none).

use std::ops::Deref;
use std::sync::Arc;

use crate::hub::Topic;

/// A socket's topics: none or one held inline, a `Vec` from the second on.
/// As small as a `Vec` (24 bytes), and a socket in one room keeps no
/// 32-byte block for it.
#[derive(Default)]
pub(super) enum Topics {
    #[default]
    None,
    One(Arc<Topic>),
    Many(Vec<Arc<Topic>>),
}

impl Topics {
    pub(super) fn push(&mut self, topic: Arc<Topic>) {
        *self = match std::mem::take(self) {
            Self::None => Self::One(topic),
            Self::One(first) => Self::Many(vec![first, topic]),
            Self::Many(mut topics) => {
                topics.push(topic);
                Self::Many(topics)
            }
        };
    }

    /// Removes the topic `name`, putting the last one in its place; `None`
    /// if the socket is not in it.
    pub(super) fn remove(&mut self, name: &str) -> Option<Arc<Topic>> {
        let at = self.iter().position(|t| t.name() == name)?;
        match std::mem::take(self) {
            Self::None => None,
            Self::One(topic) => Some(topic),
            Self::Many(mut topics) => {
                let topic = topics.swap_remove(at);
                *self = match topics.len() {
                    0 => Self::None,
                    1 => Self::One(topics.swap_remove(0)),
                    _ => Self::Many(topics),
                };
                Some(topic)
            }
        }
    }
}

impl Deref for Topics {
    type Target = [Arc<Topic>];

    fn deref(&self) -> &[Arc<Topic>] {
        match self {
            Self::None => &[],
            Self::One(topic) => std::slice::from_ref(topic),
            Self::Many(topics) => topics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(topics: &Topics) -> Vec<&str> {
        topics.iter().map(|t| t.name()).collect()
    }

    #[test]
    fn holds_one_inline_and_more_in_a_vec() {
        let topic = |name: &str| Topic::new(Arc::from(name));
        let mut topics = Topics::default();
        assert!(topics.is_empty());
        topics.push(topic("a"));
        assert!(matches!(topics, Topics::One(_)));
        topics.push(topic("b"));
        topics.push(topic("c"));
        assert_eq!(names(&topics), ["a", "b", "c"]);
        assert!(topics.remove("x").is_none());
        assert_eq!(
            topics.remove("a").map(|t| t.name().to_owned()).as_deref(),
            Some("a")
        );
        assert_eq!(names(&topics), ["c", "b"]);
        assert!(topics.remove("b").is_some());
        assert!(matches!(topics, Topics::One(_)), "back inline");
        assert!(topics.remove("c").is_some());
        assert!(topics.is_empty());
        assert!(topics.remove("c").is_none());
        assert_eq!(
            std::mem::size_of::<Topics>(),
            std::mem::size_of::<Vec<u8>>()
        );
    }
}

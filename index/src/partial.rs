//! Sealed blocks that a cursor read stopped partway through, kept so that the read continuing
//! from there does not decompress them again. A sink fills a batch from a source until the
//! batch is full, which is usually in the middle of a block; its next read of that source (after
//! the other sources had their turn) starts there. One store-wide list, oldest out, bounded in
//! raw bytes; a block is handed out once (the read that takes it keeps it again if it too stops
//! partway).

use crate::block::Block;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Raw bytes of partly read blocks kept store-wide: 16 blocks of the default 128 KiB.
pub const PARTIAL_BLOCKS_BYTES: usize = 2 << 20;

/// See the module doc.
pub struct PartialBlocks {
    budget: usize,
    held: Mutex<Held>,
}

/// A sealed block: its segment's map id (unique among a store's segments, never reused, so an
/// entry of a deleted segment cannot be mistaken for another's: it ages out), and the first
/// sequence and record count the block index gives it.
pub type Key = (u64, u64, u64);

#[derive(Default)]
struct Held {
    /// (which block, raw block), oldest first.
    blocks: VecDeque<(Key, Block)>,
    bytes: usize,
}

impl PartialBlocks {
    /// An empty list holding at most `budget` raw bytes.
    pub fn new(budget: usize) -> Self {
        PartialBlocks {
            budget,
            held: Mutex::new(Held::default()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Block `key`, if it is held (it is then no longer).
    pub fn take(&self, key: Key) -> Option<Block> {
        let mut h = self.held();
        let i = h.blocks.iter().position(|(k, _)| *k == key)?;
        let (_, raw) = h.blocks.remove(i)?;
        h.bytes -= raw.raw_len();
        Some(raw)
    }

    /// Keep block `key`, dropping the oldest while over the budget.
    pub fn keep(&self, key: Key, raw: Block) {
        if raw.raw_len() > self.budget {
            return;
        }
        let mut h = self.held();
        h.bytes += raw.raw_len();
        h.blocks.push_back((key, raw));
        while h.bytes > self.budget {
            match h.blocks.pop_front() {
                Some((_, old)) => h.bytes -= old.raw_len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_handed_out_once_and_the_oldest_go_first() {
        let p = PartialBlocks::new(300);
        p.keep((1, 0, 10), Block::Frames(vec![0; 100]));
        p.keep((1, 1, 10), Block::Frames(vec![1; 100]));
        p.keep((2, 0, 10), Block::Frames(vec![2; 100]));
        assert_eq!(p.take((1, 1, 10)).map(|b| b.raw_len()), Some(100));
        assert!(p.take((1, 1, 10)).is_none(), "handed out once");
        p.keep((3, 0, 10), Block::Frames(vec![3; 150]));
        p.keep((4, 0, 10), Block::Frames(vec![4; 100]));
        assert!(p.take((1, 0, 10)).is_none(), "the oldest went first");
        assert!(p.take((2, 0, 10)).is_none(), "then the next oldest");
        assert!(p.take((3, 0, 10)).is_some());
        assert!(p.take((4, 0, 10)).is_some());
        p.keep((5, 0, 10), Block::Frames(vec![5; 301]));
        assert!(
            p.take((5, 0, 10)).is_none(),
            "larger than the budget: not kept"
        );
    }
}

//! A bounded set of sealed-segment memory maps, shared by every segment of a store.
//!
//! Each map is one entry in the kernel's per-process mapping table (`vm.max_map_count`, 65,530
//! by default). A node with thousands of sources and several sealed segments each would come
//! close to that limit if every segment kept its map for life, so a segment is mapped only when
//! a block is read, and at most `cap` maps stay open: the least recently used one is unmapped
//! when another is needed. A map in use by a reader stays valid until that reader lets go of
//! it (readers hold an `Arc`), so eviction never pulls a mapping out from under a read; the
//! number of maps is then at most `cap` plus one per concurrent reader.

use crate::Error;
use memmap2::Mmap;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Open maps kept by default: far below `vm.max_map_count`, and above the segments a sink and a
/// few queries read at once.
pub const DEFAULT_MAX_OPEN_MAPS: usize = 1024;

/// The open maps of one store, least recently used first out.
pub struct MapCache {
    cap: usize,
    next_id: AtomicU64,
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// Segment id → its map and the tick of its last use.
    maps: HashMap<u64, (Arc<Mmap>, u64)>,
    /// Tick of last use → segment id.
    by_use: BTreeMap<u64, u64>,
    tick: u64,
    /// Maps created since the cache was made (a miss each).
    mapped: u64,
}

impl MapCache {
    /// A cache holding at most `cap` maps (at least one).
    pub fn new(cap: usize) -> Arc<MapCache> {
        Arc::new(MapCache {
            cap: cap.max(1),
            next_id: AtomicU64::new(0),
            lru: Mutex::new(Lru::default()),
        })
    }

    /// A fresh id for a segment that will read through this cache.
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Maps open now.
    pub fn open_maps(&self) -> usize {
        crate::store::lock(&self.lru).maps.len()
    }

    /// Maps created so far (each one a cache miss).
    #[cfg(test)]
    pub fn maps_created(&self) -> u64 {
        crate::store::lock(&self.lru).mapped
    }

    /// The map of segment `id` (the file at `path`, `len` bytes long when it was opened),
    /// mapping it now if it is not open.
    pub fn get(&self, id: u64, path: &Path, len: u64) -> Result<Arc<Mmap>, Error> {
        {
            let mut l = crate::store::lock(&self.lru);
            let tick = l.tick + 1;
            if let Some((map, used)) = l.maps.get_mut(&id) {
                let (map, old) = (map.clone(), std::mem::replace(used, tick));
                l.tick = tick;
                l.by_use.remove(&old);
                l.by_use.insert(tick, id);
                return Ok(map);
            }
        }
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: sealed segments are immutable once renamed into place; the store never
        // modifies them, only deletes them (which keeps the mapping valid).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        if map.len() as u64 != len {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                what: format!(
                    "sealed segment changed size since it was opened ({len} -> {} bytes)",
                    map.len()
                ),
            });
        }
        let map = Arc::new(map);
        let mut l = crate::store::lock(&self.lru);
        l.mapped += 1;
        l.tick += 1;
        let tick = l.tick;
        if let Some((_, old)) = l.maps.insert(id, (map.clone(), tick)) {
            // Another reader mapped it meanwhile: keep one entry.
            l.by_use.remove(&old);
        }
        l.by_use.insert(tick, id);
        while l.maps.len() > self.cap {
            let Some((_, victim)) = l.by_use.pop_first() else {
                break;
            };
            l.maps.remove(&victim);
        }
        Ok(map)
    }

    /// Unmap segment `id` (it is closed or deleted).
    pub fn forget(&self, id: u64) {
        let mut l = crate::store::lock(&self.lru);
        if let Some((_, used)) = l.maps.remove(&id) {
            l.by_use.remove(&used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_map_is_closed_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MapCache::new(2);
        let paths: Vec<_> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, [i as u8; 10]).unwrap();
                p
            })
            .collect();
        let get = |i: usize| cache.get(i as u64, &paths[i], 10).unwrap()[0];
        assert_eq!(get(0), 0);
        assert_eq!(get(1), 1);
        assert_eq!(get(0), 0); // 1 is now the least recently used
        assert_eq!(get(2), 2);
        assert_eq!(cache.open_maps(), 2);
        assert_eq!(cache.maps_created(), 3);
        assert_eq!(get(0), 0, "0 stayed open");
        assert_eq!(cache.maps_created(), 3);
        assert_eq!(get(1), 1, "1 is mapped again");
        assert_eq!(cache.maps_created(), 4);
        cache.forget(1);
        assert_eq!(cache.open_maps(), 1);
        // A file whose size changed since its footer was read is refused, never read.
        assert!(matches!(
            cache.get(9, &paths[2], 11),
            Err(Error::Corrupt { .. })
        ));
    }
}

//! C2SP `tlog-tiles` (c2sp.org/tlog-tiles): tile coordinates and paths, which tiles a tree size has,
//! tile data from stored hashes, entry bundles, a tile-backed [`HashReader`], and [`LogAuditor`], the
//! streaming full-log verifier.
//!
//! - A tile (`L`, `N`, `W`) holds hashes `N·256 .. N·256+W` of tile level `L`; hash `i` of tile level
//!   `L` is the root of leaves `[i·256^L, (i+1)·256^L)` (stored-hash level `8L`). Full tiles have 256
//!   hashes (8,192 bytes); a partial tile for tree size `s` has `floor(s / 256^L) mod 256` hashes.
//! - Paths: `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, with `N` written as 3-digit
//!   groups, all but the last prefixed with `x` (1234067 → `x001/x234/067`).
//! - An entry bundle is `uint16_be(len) || entry` repeated, so one entry is at most 65,535 bytes.
//!
//! Hashes read through [`TileHashReader`] are NOT authenticated by themselves: always check the proof
//! built from them against a signed checkpoint (as [`prove_record_from_tiles`] does). We deliberately
//! do not port Go's `TileHashReader` tile-to-parent checks (Debian's x/mod 0.7.0 has a bypass bug
//! there, go.dev/issue/80744); full audits recompute every tile from the entries ([`LogAuditor`]).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::hash::{HASH_SIZE, Hash, TreeHasher, leaf_hash, root_from_leaf_hashes};
use crate::proof::{InclusionProof, check_record, prove_record};
use crate::stored::{HashReader, StoredHashIndex, stored_hash_index};
use crate::{Error, Result};

/// Hashes per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Stored-hash levels per tile level.
pub const TILE_HEIGHT: u32 = 8;
/// Largest entry an entry bundle can hold.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// One tile: tile level, index at that level, and width (1..=256; 256 = full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    /// Tile level `L` (0 = leaf hashes).
    pub level: u8,
    /// Tile index `N` at that level.
    pub n: u64,
    /// Number of hashes (entries for bundles), 1..=256.
    pub width: u16,
}

/// What a tlog-tiles path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`: a hash tile.
    Hashes(Tile),
    /// `tile/entries/<N>[.p/<W>]`: an entry bundle (its `level` is 0).
    Entries(Tile),
}

fn encode_index(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut m = n / 1000;
    while m > 0 {
        groups.push(format!("x{:03}", m % 1000));
        m /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

impl Tile {
    /// Whether the tile has all 256 hashes.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The hash-tile path `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// The entry-bundle path `tile/entries/<N>[.p/<W>]` (meaningful for level-0 tiles).
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.suffix())
    }

    fn suffix(&self) -> String {
        if self.is_full() {
            encode_index(self.n)
        } else {
            format!("{}.p/{}", encode_index(self.n), self.width)
        }
    }

    /// Index of the first log entry this tile covers.
    pub fn first_entry(&self) -> u64 {
        self.n
            .saturating_mul(TILE_WIDTH)
            .saturating_mul(1u64 << (TILE_HEIGHT * u32::from(self.level)).min(63))
    }
}

/// The hash-tile path of `tile` (same as [`Tile::path`]).
pub fn tile_path(tile: &Tile) -> String {
    tile.path()
}

/// Parses a tile path (relative to the log prefix), accepting only the canonical encoding.
pub fn parse_tile_path(path: &str) -> Result<TilePath> {
    let bad = |rule: &str| Error::malformed("tile path", rule.to_owned());
    let rest = path
        .strip_prefix("tile/")
        .ok_or_else(|| bad("must start with tile/"))?;
    let (kind, rest) = rest
        .split_once('/')
        .ok_or_else(|| bad("missing tile index"))?;
    let level: Option<u8> = if kind == "entries" {
        None
    } else {
        let l: u8 = kind
            .parse()
            .ok()
            .filter(|l: &u8| *l < 64 && l.to_string() == kind)
            .ok_or_else(|| bad("level must be 0..63"))?;
        Some(l)
    };
    let (index_part, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let width: u16 = w
                .parse()
                .ok()
                .filter(|x: &u16| (1..256).contains(x) && x.to_string() == w)
                .ok_or_else(|| bad("partial width must be 1..255"))?;
            (i, width)
        }
        None => (rest, TILE_WIDTH as u16),
    };
    let mut n: u64 = 0;
    let groups: Vec<&str> = index_part.split('/').collect();
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last {
            *g
        } else {
            g.strip_prefix('x')
                .ok_or_else(|| bad("non-final index elements need an x prefix"))?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("index elements must be 3 digits"));
        }
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(digits.parse::<u64>().unwrap_or(0)))
            .ok_or_else(|| bad("index too large"))?;
    }
    let tile = Tile {
        level: level.unwrap_or(0),
        n,
        width,
    };
    let canonical = match level {
        Some(_) => tile.path(),
        None => tile.entries_path(),
    };
    if canonical != path {
        return Err(bad("not in canonical form"));
    }
    Ok(match level {
        Some(_) => TilePath::Hashes(tile),
        None => TilePath::Entries(tile),
    })
}

/// Number of hashes at tile level `level` for tree size `size`.
fn hashes_at_level(size: u64, level: u8) -> u64 {
    let shift = TILE_HEIGHT * u32::from(level);
    if shift >= 64 { 0 } else { size >> shift }
}

/// Every tile (full and the partial one, per level) that exists for tree size `size`, level 0 first.
pub fn tiles_for_size(size: u64) -> Vec<Tile> {
    new_tiles(0, size)
}

/// The tiles that must be written when the tree grows from `old_size` to `new_size`: new full tiles
/// and the new partial tile of each level (Go: `tlog.NewTiles`).
pub fn new_tiles(old_size: u64, new_size: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    for level in 0u8..64 {
        let (old_w, new_w) = (
            hashes_at_level(old_size, level),
            hashes_at_level(new_size, level),
        );
        if new_w == 0 {
            break;
        }
        for n in old_w / TILE_WIDTH..new_w.div_ceil(TILE_WIDTH) {
            let width = (new_w - n * TILE_WIDTH).min(TILE_WIDTH);
            let old_width = old_w.saturating_sub(n * TILE_WIDTH).min(TILE_WIDTH);
            if width != old_width {
                out.push(Tile {
                    level,
                    n,
                    width: width as u16,
                });
            }
        }
    }
    out
}

/// The tile of level `level` and index `n` as it exists at tree size `size`, if it exists.
pub fn tile_at_size(level: u8, n: u64, size: u64) -> Option<Tile> {
    let w = hashes_at_level(size, level).checked_sub(n.checked_mul(TILE_WIDTH)?)?;
    (w > 0).then(|| Tile {
        level,
        n,
        width: w.min(TILE_WIDTH) as u16,
    })
}

/// The bytes of a hash tile (concatenated 32-byte hashes) read from stored hashes
/// (Go: `tlog.ReadTileData`).
pub fn read_tile_data<R: HashReader + ?Sized>(tile: &Tile, reader: &R) -> Result<Vec<u8>> {
    let level = TILE_HEIGHT * u32::from(tile.level);
    let start = tile.n * TILE_WIDTH;
    let indexes: Vec<StoredHashIndex> = (start..start + u64::from(tile.width))
        .map(|i| stored_hash_index(level, i))
        .collect();
    let hashes = crate::stored::read_checked(reader, &indexes)?;
    Ok(hashes.iter().flat_map(|h| h.0).collect())
}

/// Splits tile bytes into hashes, checking the length against the tile's width.
pub fn parse_tile_data(tile: &Tile, data: &[u8]) -> Result<Vec<Hash>> {
    if data.len() != usize::from(tile.width) * HASH_SIZE {
        return Err(Error::malformed(
            "tile data",
            format!(
                "{} must be {} bytes, got {}",
                tile.path(),
                usize::from(tile.width) * HASH_SIZE,
                data.len()
            ),
        ));
    }
    Ok(data
        .chunks_exact(HASH_SIZE)
        .map(|c| Hash(c.try_into().expect("32-byte chunk")))
        .collect())
}

/// Encodes an entry bundle. Entries over 65,535 bytes are rejected (index named), as are more than
/// 256 entries.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>> {
    if entries.is_empty() || entries.len() as u64 > TILE_WIDTH {
        return Err(Error::InvalidInput(format!(
            "an entry bundle holds 1..=256 entries, got {}",
            entries.len()
        )));
    }
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| {
            Error::malformed(
                "entry bundle",
                format!("entry {i} is {} bytes, limit is {MAX_ENTRY_SIZE}", e.len()),
            )
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Parses an entry bundle into its entries (borrowed).
pub fn parse_bundle(data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(Error::malformed("entry bundle", "truncated length prefix"));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return Err(Error::malformed(
                "entry bundle",
                format!("entry {} is truncated", out.len()),
            ));
        }
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
        if out.len() as u64 > TILE_WIDTH {
            return Err(Error::malformed("entry bundle", "more than 256 entries"));
        }
    }
    Ok(out)
}

/// A [`HashReader`] over tiles fetched for a tree of size `size`. Fetched tiles are cached.
/// Hashes are unauthenticated: check proofs against a signed checkpoint.
pub struct TileHashReader<F: FnMut(&Tile) -> Result<Vec<u8>>> {
    size: u64,
    fetch: RefCell<F>,
    cache: RefCell<HashMap<Tile, Vec<Hash>>>,
}

impl<F: FnMut(&Tile) -> Result<Vec<u8>>> TileHashReader<F> {
    /// A reader for tree size `size` fetching tile bytes with `fetch`.
    pub fn new(size: u64, fetch: F) -> Self {
        TileHashReader {
            size,
            fetch: RefCell::new(fetch),
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn tile_hashes(&self, tile: Tile) -> Result<Vec<Hash>> {
        if let Some(h) = self.cache.borrow().get(&tile) {
            return Ok(h.clone());
        }
        let data = (self.fetch.borrow_mut())(&tile)?;
        let hashes = parse_tile_data(&tile, &data)?;
        self.cache.borrow_mut().insert(tile, hashes.clone());
        Ok(hashes)
    }
}

impl<F: FnMut(&Tile) -> Result<Vec<u8>>> HashReader for TileHashReader<F> {
    fn read_hashes(&self, indexes: &[StoredHashIndex]) -> Result<Vec<Hash>> {
        indexes
            .iter()
            .map(|idx| {
                let (level, n) = idx.split();
                let tile_level = level / TILE_HEIGHT;
                let sub = level % TILE_HEIGHT;
                // The subtree covers hashes [n<<sub, (n+1)<<sub) of stored level 8·tile_level.
                let first = n << sub;
                let count = 1u64 << sub;
                let tile_n = first / TILE_WIDTH;
                let tile = tile_at_size(tile_level as u8, tile_n, self.size)
                    .filter(|t| first + count <= tile_n * TILE_WIDTH + u64::from(t.width))
                    .ok_or_else(|| {
                        Error::Reader(format!(
                            "hash ({level},{n}) is not in the tree of size {}",
                            self.size
                        ))
                    })?;
                let hashes = self.tile_hashes(tile)?;
                let off = (first - tile_n * TILE_WIDTH) as usize;
                Ok(root_from_leaf_hashes(&hashes[off..off + count as usize]))
            })
            .collect()
    }
}

/// Builds the inclusion proof of entry `index` from tiles and checks it against the (already
/// signature-checked) tree head `size`/`root` and the entry's leaf hash.
pub fn prove_record_from_tiles<F: FnMut(&Tile) -> Result<Vec<u8>>>(
    size: u64,
    root: Hash,
    index: u64,
    leaf: Hash,
    fetch: F,
) -> Result<InclusionProof> {
    let reader = TileHashReader::new(size, fetch);
    let proof = prove_record(size, index, &reader)?;
    check_record(&proof, size, root, index, leaf)?;
    Ok(proof)
}

/// Where a full audit found the log inconsistent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// 首个异常序号: the first entry index covered by the first hash that disagrees (for a level-0
    /// tile or a bundle this is the exact entry), or `None` when only the root disagrees.
    pub first_bad_index: Option<u64>,
    /// What disagreed, in English.
    pub reason: String,
}

impl std::fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first_bad_index {
            Some(i) => write!(f, "first bad index {i}: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// Streaming full-log verifier: push every entry in order; it recomputes every tile and the root in
/// O(log n) memory. Compare completed tiles with served ones via [`LogAuditor::take_tiles`] /
/// [`compare_tile`], and the root with the checkpoint.
#[derive(Debug, Default)]
pub struct LogAuditor {
    /// Current (incomplete) tile at each tile level.
    levels: Vec<Vec<Hash>>,
    size: u64,
    completed: Vec<(Tile, Vec<Hash>)>,
    keep_tiles: bool,
}

impl LogAuditor {
    /// A verifier that keeps completed tiles for comparison (drain them with `take_tiles`).
    pub fn new() -> Self {
        LogAuditor {
            keep_tiles: true,
            ..Default::default()
        }
    }

    /// A verifier that only recomputes the root (fastest).
    pub fn root_only() -> Self {
        LogAuditor::default()
    }

    /// Entries pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Pushes the next entry.
    pub fn push_entry(&mut self, entry: &[u8]) {
        self.push_leaf_hash(leaf_hash(entry));
    }

    /// Pushes the next entry's leaf hash.
    pub fn push_leaf_hash(&mut self, h: Hash) {
        self.size += 1;
        let mut level = 0usize;
        let mut h = h;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::with_capacity(TILE_WIDTH as usize));
            }
            self.levels[level].push(h);
            if self.levels[level].len() as u64 != TILE_WIDTH {
                return;
            }
            let full = std::mem::take(&mut self.levels[level]);
            self.levels[level].reserve(TILE_WIDTH as usize);
            h = root_from_leaf_hashes(&full);
            if self.keep_tiles {
                let n = hashes_at_level(self.size, level as u8) / TILE_WIDTH - 1;
                self.completed.push((
                    Tile {
                        level: level as u8,
                        n,
                        width: TILE_WIDTH as u16,
                    },
                    full,
                ));
            }
            level += 1;
        }
    }

    /// Pushes every entry of an entry bundle; returns how many.
    pub fn push_bundle(&mut self, bundle: &[u8]) -> Result<usize> {
        let entries = parse_bundle(bundle)?;
        for e in &entries {
            self.push_entry(e);
        }
        Ok(entries.len())
    }

    /// Takes the full tiles completed since the last call.
    pub fn take_tiles(&mut self) -> Vec<(Tile, Vec<Hash>)> {
        std::mem::take(&mut self.completed)
    }

    /// The current partial tiles (level 0 first), as they exist at the current size.
    pub fn partial_tiles(&self) -> Vec<(Tile, Vec<Hash>)> {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, hs)| !hs.is_empty())
            .map(|(l, hs)| {
                let n = hashes_at_level(self.size, l as u8) / TILE_WIDTH;
                (
                    Tile {
                        level: l as u8,
                        n,
                        width: hs.len() as u16,
                    },
                    hs.clone(),
                )
            })
            .collect()
    }

    /// The root of the entries pushed so far.
    pub fn root(&self) -> Hash {
        let mut th = TreeHasher::new();
        for (l, hs) in self.levels.iter().enumerate().rev() {
            for h in hs {
                // Tiles are filled in order, so every push is aligned.
                let _ = th.push_subtree(*h, TILE_HEIGHT * l as u32);
            }
        }
        th.root()
    }
}

/// Compares recomputed tile hashes with served tile bytes, naming the first bad entry index.
pub fn compare_tile(
    tile: &Tile,
    expected: &[Hash],
    served: &[u8],
) -> std::result::Result<(), AuditFailure> {
    let hashes = parse_tile_data(tile, served).map_err(|e| AuditFailure {
        first_bad_index: Some(tile.first_entry()),
        reason: e.to_string(),
    })?;
    if let Some(pos) = hashes.iter().zip(expected).position(|(a, b)| a != b) {
        let span = 1u64 << (TILE_HEIGHT * u32::from(tile.level)).min(63);
        return Err(AuditFailure {
            first_bad_index: Some(tile.first_entry() + pos as u64 * span),
            reason: format!("{} hash {pos} differs from the recomputed one", tile.path()),
        });
    }
    if hashes.len() != expected.len() {
        return Err(AuditFailure {
            first_bad_index: Some(tile.first_entry()),
            reason: format!("{} has the wrong width", tile.path()),
        });
    }
    Ok(())
}

/// Result of a successful [`audit_log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Entries verified.
    pub size: u64,
    /// The recomputed root (equal to the checkpoint's).
    pub root: Hash,
    /// Hash tiles compared.
    pub tiles_checked: u64,
}

/// Verifies a whole log of `size` entries against `root` (from a signature-checked checkpoint):
/// fetches every entry bundle in order, recomputes every hash tile and compares it with the served
/// one, checks the root at `trusted` (an earlier trusted tree head: size and root) if given, and the
/// final root. `progress(done, total)` is called after each bundle.
pub fn audit_log(
    size: u64,
    root: Hash,
    trusted: Option<(u64, Hash)>,
    mut fetch_bundle: impl FnMut(&Tile) -> Result<Vec<u8>>,
    mut fetch_tile: impl FnMut(&Tile) -> Result<Vec<u8>>,
    mut progress: impl FnMut(u64, u64),
) -> std::result::Result<AuditReport, AuditFailure> {
    let mut auditor = LogAuditor::new();
    let mut tiles_checked = 0u64;
    let fail = |i: Option<u64>, r: String| AuditFailure {
        first_bad_index: i,
        reason: r,
    };
    if let Some((tsize, _)) = trusted
        && tsize > size
    {
        return Err(fail(
            None,
            format!("log shrank: trusted size {tsize} > {size}"),
        ));
    }
    let check_trusted = |auditor: &LogAuditor| -> std::result::Result<(), AuditFailure> {
        if let Some((tsize, troot)) = trusted
            && auditor.size() == tsize
            && auditor.root() != troot
        {
            return Err(fail(
                None,
                format!("root at trusted size {tsize} differs: entries before it were changed"),
            ));
        }
        Ok(())
    };
    check_trusted(&auditor)?;
    let bundles = size.div_ceil(TILE_WIDTH);
    for n in 0..bundles {
        let tile = tile_at_size(0, n, size).expect("bundle within size");
        let first = n * TILE_WIDTH;
        let data = fetch_bundle(&tile).map_err(|e| fail(Some(first), e.to_string()))?;
        let entries = parse_bundle(&data).map_err(|e| fail(Some(first), e.to_string()))?;
        // Compare each entry with the served level-0 tile first, so an edited, deleted, inserted or
        // reordered entry is named exactly.
        let served0 = fetch_tile(&tile).map_err(|e| fail(Some(first), e.to_string()))?;
        let served0 =
            parse_tile_data(&tile, &served0).map_err(|e| fail(Some(first), e.to_string()))?;
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        if let Some(pos) = leaves.iter().zip(&served0).position(|(a, b)| a != b) {
            return Err(fail(
                Some(first + pos as u64),
                format!(
                    "entry {} does not match its hash in {}",
                    first + pos as u64,
                    tile.path()
                ),
            ));
        }
        if entries.len() != usize::from(tile.width) {
            return Err(fail(
                Some(first + entries.len().min(usize::from(tile.width)) as u64),
                format!(
                    "{} has {} entries, expected {}",
                    tile.entries_path(),
                    entries.len(),
                    tile.width
                ),
            ));
        }
        for leaf in leaves {
            auditor.push_leaf_hash(leaf);
            if trusted.is_some() {
                check_trusted(&auditor)?;
            }
        }
        let mut recomputed = auditor.take_tiles();
        if n + 1 == bundles {
            recomputed.extend(auditor.partial_tiles());
        }
        recomputed.sort_by_key(|(t, _)| (t.level, t.n));
        for (t, hashes) in recomputed {
            tiles_checked += 1;
            if t.level == 0 {
                continue; // this bundle's level-0 tile was compared entry by entry above
            }
            let served = fetch_tile(&t).map_err(|e| fail(Some(t.first_entry()), e.to_string()))?;
            compare_tile(&t, &hashes, &served)?;
        }
        progress(auditor.size(), size);
    }
    let got = auditor.root();
    if got != root {
        return Err(fail(
            None,
            "recomputed root differs from the checkpoint although every tile matches the \
             entries: the tiles were rewritten consistently; compare with an earlier checkpoint"
                .into(),
        ));
    }
    Ok(AuditReport {
        size,
        root: got,
        tiles_checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::MemoryHashStore;

    #[test]
    fn paths() {
        let check = |t: Tile, hashes: &str, entries: &str| {
            assert_eq!(t.path(), hashes);
            assert_eq!(t.entries_path(), entries);
            assert_eq!(parse_tile_path(hashes).unwrap(), TilePath::Hashes(t));
            if t.level == 0 {
                assert_eq!(parse_tile_path(entries).unwrap(), TilePath::Entries(t));
            }
        };
        let t = |level, n, width| Tile { level, n, width };
        check(
            t(0, 1234067, 256),
            "tile/0/x001/x234/067",
            "tile/entries/x001/x234/067",
        );
        check(t(0, 0, 256), "tile/0/000", "tile/entries/000");
        check(t(1, 999, 17), "tile/1/999.p/17", "tile/entries/999.p/17");
        check(
            t(2, 1000, 1),
            "tile/2/x001/000.p/1",
            "tile/entries/x001/000.p/1",
        );
        for bad in [
            "tile/0/1234067",
            "tile/0/001/234",
            "tile/0/x000/067",
            "tile/0/067.p/256",
            "tile/0/067.p/0",
            "tile/0/067.p/017",
            "tile/64/000",
            "tile/01/000",
            "tiles/0/000",
            "tile/0/06",
        ] {
            assert!(parse_tile_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tiles_for_70000_match_spec_example() {
        let tiles = tiles_for_size(70_000);
        let full0 = tiles.iter().filter(|t| t.level == 0 && t.is_full()).count();
        assert_eq!(full0, 273);
        let partial: Vec<_> = tiles.iter().filter(|t| !t.is_full()).collect();
        assert_eq!(
            partial,
            vec![
                &Tile {
                    level: 0,
                    n: 273,
                    width: 112
                },
                &Tile {
                    level: 1,
                    n: 1,
                    width: 17
                },
                &Tile {
                    level: 2,
                    n: 0,
                    width: 1
                },
            ]
        );
        assert_eq!(
            tiles.iter().filter(|t| t.level == 1 && t.is_full()).count(),
            1
        );
        assert_eq!(tiles_for_size(0), vec![]);
        // Untrusted coordinates (e.g. from a parsed path) never overflow.
        assert_eq!(tile_at_size(0, u64::MAX, u64::MAX), None);
        assert_eq!(tile_at_size(7, 0, u64::MAX).map(|t| t.width), Some(255));
        assert_eq!(
            Tile {
                level: 63,
                n: u64::MAX,
                width: 1
            }
            .first_entry(),
            u64::MAX
        );
        assert_eq!(
            new_tiles(256, 257),
            vec![Tile {
                level: 0,
                n: 1,
                width: 1
            }]
        );
        assert_eq!(
            new_tiles(255, 256),
            vec![
                Tile {
                    level: 0,
                    n: 0,
                    width: 256
                },
                Tile {
                    level: 1,
                    n: 0,
                    width: 1
                }
            ]
        );
    }

    #[test]
    fn bundles_round_trip_and_limits() {
        let entries: Vec<Vec<u8>> = vec![b"a".to_vec(), vec![], vec![7u8; 65_535]];
        let b = encode_bundle(&entries).unwrap();
        let parsed = parse_bundle(&b).unwrap();
        assert_eq!(
            parsed,
            entries.iter().map(|e| e.as_slice()).collect::<Vec<_>>()
        );
        let e = encode_bundle(&[vec![0u8; 65_536]]).unwrap_err();
        assert!(e.to_string().contains("entry 0"), "{e}");
        assert!(parse_bundle(&b[..b.len() - 1]).is_err());
        assert!(parse_bundle(&[0]).is_err());
    }

    fn build(n: u64) -> (MemoryHashStore, Vec<Vec<u8>>) {
        let mut s = MemoryHashStore::new();
        let entries: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("access-record-{i}").into_bytes())
            .collect();
        entries.iter().for_each(|e| {
            s.append(e);
        });
        (s, entries)
    }

    /// The bundle for tile `t`, with `f` applied to bundle 100.
    fn edited_bundle(entries: &[Vec<u8>], t: &Tile, f: fn(&mut Vec<Vec<u8>>)) -> Result<Vec<u8>> {
        let s = (t.n * 256) as usize;
        let mut b: Vec<Vec<u8>> = entries[s..s + usize::from(t.width)].to_vec();
        if t.n == 100 {
            f(&mut b);
        }
        encode_bundle(&b)
    }

    #[test]
    fn tile_reader_proofs_and_audit() {
        let size = 70_000u64;
        let (store, entries) = build(size);
        let root = store.root();
        let fetch = |t: &Tile| read_tile_data(t, &store);
        for idx in [0u64, 255, 256, 65_535, 65_536, 69_999] {
            let p =
                prove_record_from_tiles(size, root, idx, leaf_hash(&entries[idx as usize]), fetch)
                    .unwrap();
            assert_eq!(p, prove_record(size, idx, &store).unwrap());
        }
        let bundle = |t: &Tile| {
            let s = (t.n * 256) as usize;
            encode_bundle(&entries[s..s + usize::from(t.width)])
        };
        let mut calls = 0;
        let report = audit_log(
            size,
            root,
            Some((1000, crate::stored::tree_hash(1000, &store).unwrap())),
            bundle,
            fetch,
            |_, _| calls += 1,
        )
        .unwrap();
        assert_eq!(report.size, size);
        assert_eq!(report.tiles_checked, tiles_for_size(size).len() as u64);
        assert_eq!(calls, 274);

        // Tampered entry: detected at its exact index.
        let tampered = |t: &Tile| {
            let mut b: Vec<Vec<u8>> =
                entries[(t.n * 256) as usize..(t.n * 256) as usize + usize::from(t.width)].to_vec();
            if t.n == 100 {
                b[7] = b"forged".to_vec();
            }
            encode_bundle(&b)
        };
        let err = audit_log(size, root, None, tampered, fetch, |_, _| {}).unwrap_err();
        assert_eq!(err.first_bad_index, Some(100 * 256 + 7), "{err}");
        // Deleted, inserted and reordered entries are named exactly.
        let check = |f: fn(&mut Vec<Vec<u8>>), expected: u64| {
            let err = audit_log(
                size,
                root,
                None,
                |t| edited_bundle(&entries, t, f),
                fetch,
                |_, _| {},
            )
            .unwrap_err();
            assert_eq!(err.first_bad_index, Some(expected), "{err}");
        };
        check(|b| drop(b.remove(9)), 100 * 256 + 9);
        check(
            |b| {
                b.insert(3, b"inserted".to_vec());
                b.pop();
            },
            100 * 256 + 3,
        );
        check(|b| b.swap(20, 21), 100 * 256 + 20);
        check(|b| drop(b.pop()), 100 * 256 + 255);
        // An entry edited together with its level-0 hash is caught by the level-1 tile: the first
        // entry of the range that hash covers is named.
        let forged_entries = |t: &Tile| edited_bundle(&entries, t, |b| b[7] = b"forged".to_vec());
        let forged_tiles = |t: &Tile| {
            let mut d = read_tile_data(t, &store)?;
            if t.level == 0 && t.n == 100 {
                d[7 * 32..8 * 32].copy_from_slice(&leaf_hash(b"forged").0);
            }
            Ok(d)
        };
        let err = audit_log(size, root, None, forged_entries, forged_tiles, |_, _| {}).unwrap_err();
        assert_eq!(err.first_bad_index, Some(100 * 256), "{err}");
        // Tampered level-1 tile.
        let bad_tile = |t: &Tile| {
            let mut d = read_tile_data(t, &store)?;
            if t.level == 1 && t.n == 0 {
                d[32 * 5] ^= 1;
            }
            Ok(d)
        };
        let err = audit_log(size, root, None, bundle, bad_tile, |_, _| {}).unwrap_err();
        assert_eq!(err.first_bad_index, Some(5 * 256), "{err}");
        // Wrong root.
        let err = audit_log(size, Hash::default(), None, bundle, fetch, |_, _| {}).unwrap_err();
        assert_eq!(err.first_bad_index, None);
    }

    #[test]
    fn auditor_root_matches_store_at_every_small_size() {
        let (store, entries) = build(600);
        let mut a = LogAuditor::root_only();
        for (i, e) in entries.iter().enumerate() {
            a.push_entry(e);
            assert_eq!(
                a.root(),
                crate::stored::tree_hash(i as u64 + 1, &store).unwrap()
            );
        }
    }
}

//! Minimal, dependency-free reader for the kernel's raw BTF (`/sys/kernel/btf/vmlinux`): struct
//! member layout (incl. bitfields), enum values, and existence checks for functions and structs;
//! and `KernelBtf`, the BTF read once per start for every user.

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Context;

const INT: u8 = 1;
const PTR: u8 = 2;
const ARRAY: u8 = 3;
const STRUCT: u8 = 4;
const UNION: u8 = 5;
const ENUM: u8 = 6;
const FUNC: u8 = 12;
const FUNC_PROTO: u8 = 13;
const DATASEC: u8 = 15;
const FLOAT: u8 = 16;
const ENUM64: u8 = 19;
/// TYPEDEF, VOLATILE, CONST, RESTRICT and TYPE_TAG (18) just wrap another type.
const fn is_modifier(kind: u8) -> bool {
    matches!(kind, 8..=11 | 18)
}

/// Bounds typedef chains and array nesting so cyclic (corrupt) input terminates.
const MAX_DEPTH: u32 = 64;
/// Bounds the anonymous-member search; a shared budget also stops exponential fan-out.
const FIND_BUDGET: u32 = 4096;

/// Where a struct member lives, as the BPF side reads it: read `size` bytes (1, 2, 4 or 8) at byte
/// `offset`, little-endian, then `(value >> bit_shift) & mask(bit_width)`; bit_width 0 = whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
    pub bit_shift: u8,
    pub bit_width: u8,
}

/// Errors from parsing BTF or looking things up in it.
#[derive(Debug)]
pub enum BtfError {
    /// Not little-endian BTF (wrong magic).
    BadMagic(u16),
    /// BTF version other than 1.
    BadVersion(u8),
    /// Truncated or internally inconsistent data.
    Corrupt(String),
    /// No struct or union of this name.
    NoStruct(String),
    /// The struct exists but the dotted member path does not.
    NoMember { root: String, path: String },
    /// The member exists but cannot be described as a [`Field`].
    Unsupported { root: String, path: String, why: &'static str },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfError::BadMagic(m) => write!(f, "bad btf magic {m:#06x}, want 0xeb9f"),
            BtfError::BadVersion(v) => write!(f, "unsupported btf version {v}"),
            BtfError::Corrupt(why) => write!(f, "corrupt btf: {why}"),
            BtfError::NoStruct(name) => write!(f, "struct {name} not found in btf"),
            BtfError::NoMember { root, path } => write!(f, "struct {root} has no member {path}"),
            BtfError::Unsupported { root, path, why } => {
                write!(f, "struct {root} member {path}: {why}")
            }
        }
    }
}

impl std::error::Error for BtfError {}

fn corrupt(why: impl Into<String>) -> BtfError {
    BtfError::Corrupt(why.into())
}

/// One type record. `a`/`b` depend on kind: INT encoding; ARRAY elem type and count;
/// STRUCT/UNION first index into `members`; ENUM/ENUM64 first index into `enumerators`.
#[derive(Debug, Clone, Copy, Default)]
struct Ty {
    kind: u8,
    kflag: bool,
    name: u32,
    vlen: u32,
    size_or_type: u32,
    a: u32,
    b: u32,
}

/// STRUCT/UNION member as stored: (name offset, type id, raw offset word).
type Member = (u32, u32, u32);

/// Parsed BTF with name indexes for fast lookup.
pub struct Btf {
    types: Vec<Ty>, // index = type id; [0] is void
    members: Vec<Member>,
    enumerators: Vec<(u32, i64)>,
    strs: Vec<u8>,
    structs: HashMap<String, u32>,
    enums: HashMap<String, u32>,
    funcs: HashSet<String>,
}

/// Summary only; the tables are far too large to print.
impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Btf {{ {} types, {} structs }}", self.types.len() - 1, self.structs.len())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize, // invariant: pos <= buf.len()
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let b = self.buf.get(self.pos..self.pos + 4).ok_or_else(|| corrupt("truncated"))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, words: u32) -> Result<(), BtfError> {
        (0..words).try_for_each(|_| self.u32().map(drop))
    }
}

impl Btf {
    /// Parses raw little-endian BTF; returns an error (never panics) on corrupt input.
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let mut hdr = Reader { buf: data, pos: 0 };
        let mut h = [0u64; 6];
        for v in &mut h {
            *v = hdr.u32().map_err(|_| corrupt("header truncated"))? as u64;
        }
        let [w0, hdr_len, type_off, type_len, str_off, str_len] = h;
        if w0 as u16 != 0xeb9f {
            return Err(BtfError::BadMagic(w0 as u16));
        }
        if (w0 >> 16) as u8 != 1 {
            return Err(BtfError::BadVersion((w0 >> 16) as u8));
        }
        // All values are u32, so these u64 sums cannot overflow.
        let section = |off: u64, len: u64, what: &str| {
            let (start, end) = (hdr_len + off, hdr_len + off + len);
            if hdr_len < 24 || end > data.len() as u64 {
                return Err(corrupt(format!(
                    "{what} section {start}..{end} outside {} bytes",
                    data.len()
                )));
            }
            Ok(&data[start as usize..end as usize])
        };
        let type_sec = section(type_off, type_len, "type")?;
        let strs = section(str_off, str_len, "string")?;
        if strs.first() != Some(&0) {
            return Err(corrupt("string section must start with a nul byte"));
        }
        let check = |off: u32| {
            let ok = (off as usize) < strs.len();
            ok.then_some(off).ok_or_else(|| corrupt(format!("string offset {off} out of range")))
        };

        let (mut types, mut members, mut enumerators) = (vec![Ty::default()], vec![], vec![]);
        let mut r = Reader { buf: type_sec, pos: 0 };
        while r.pos < type_sec.len() {
            let name = check(r.u32()?)?;
            let info = r.u32()?;
            let size_or_type = r.u32()?;
            let (kind, vlen, kflag) = ((info >> 24) as u8 & 0x1f, info & 0xffff, info >> 31 == 1);
            let (mut a, mut b) = (0, 0);
            match kind {
                INT => a = r.u32()?,
                ARRAY => (a, _, b) = (r.u32()?, r.u32()?, r.u32()?), // elem, index type, nelems
                STRUCT | UNION => {
                    a = members.len() as u32;
                    for _ in 0..vlen {
                        members.push((check(r.u32()?)?, r.u32()?, r.u32()?));
                    }
                }
                ENUM | ENUM64 => {
                    a = enumerators.len() as u32;
                    for _ in 0..vlen {
                        let (name, lo) = (check(r.u32()?)?, r.u32()?);
                        let val = match (kind, kflag) {
                            (ENUM64, _) => ((r.u32()? as u64) << 32 | lo as u64) as i64,
                            (_, true) => lo as i32 as i64, // kflag marks signed enums
                            _ => lo as i64,
                        };
                        enumerators.push((name, val));
                    }
                }
                FUNC_PROTO => (0..vlen).try_for_each(|_| check(r.u32()?).and(r.skip(1)))?,
                14 | 17 => r.skip(1)?, // VAR linkage, DECL_TAG component_idx
                DATASEC => r.skip(3 * vlen)?,
                PTR | 7..=FUNC | FLOAT | 18 => {}
                k => return Err(corrupt(format!("unknown kind {k} at type id {}", types.len()))),
            }
            types.push(Ty { kind, kflag, name, vlen, size_or_type, a, b });
        }

        let mut btf = Btf {
            types,
            members,
            enumerators,
            strs: strs.to_vec(),
            structs: HashMap::new(),
            enums: HashMap::new(),
            funcs: HashSet::new(),
        };
        btf.index();
        Ok(btf)
    }

    /// Builds the name indexes, preferring sized structs and non-empty enums over forward decls.
    fn index(&mut self) {
        let (mut structs, mut enums, mut funcs) = (HashMap::new(), HashMap::new(), HashSet::new());
        let complete = |t: &Ty| {
            if t.kind == ENUM || t.kind == ENUM64 {
                t.vlen > 0
            } else {
                t.size_or_type > 0
            }
        };
        for (id, t) in self.types.iter().enumerate() {
            let name = self.name(t.name);
            let map: &mut HashMap<String, u32> = match t.kind {
                _ if name.is_empty() => continue,
                STRUCT | UNION => &mut structs,
                ENUM | ENUM64 => &mut enums,
                FUNC => {
                    funcs.insert(name.to_string());
                    continue;
                }
                _ => continue,
            };
            let prev = map.entry(name.to_string()).or_insert(id as u32);
            if complete(t) && !complete(&self.types[*prev as usize]) {
                *prev = id as u32;
            }
        }
        (self.structs, self.enums, self.funcs) = (structs, enums, funcs);
    }

    fn name(&self, off: u32) -> &str {
        let s = self.strs.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or_default()
    }

    fn ty(&self, id: u32) -> Result<&Ty, BtfError> {
        self.types.get(id as usize).ok_or_else(|| corrupt(format!("type id {id} out of range")))
    }

    /// Skips typedef/const/volatile/restrict/type_tag to the underlying type.
    fn resolve(&self, mut id: u32) -> Result<&Ty, BtfError> {
        for _ in 0..MAX_DEPTH {
            match self.ty(id)? {
                t if is_modifier(t.kind) => id = t.size_or_type,
                t => return Ok(t),
            }
        }
        Err(corrupt(format!("type chain too long at id {id}")))
    }

    fn byte_size(&self, id: u32, depth: u32) -> Result<Option<u64>, BtfError> {
        let t = self.resolve(id)?;
        Ok(match t.kind {
            INT | STRUCT | UNION | ENUM | ENUM64 | FLOAT => Some(t.size_or_type as u64),
            PTR => Some(8),
            ARRAY if depth > MAX_DEPTH => return Err(corrupt("array nesting too deep")),
            ARRAY => self.byte_size(t.a, depth + 1)?.map(|e| e.saturating_mul(t.b as u64)),
            _ => None,
        })
    }

    /// Finds member `name` of composite `t`, descending into anonymous struct/union members
    /// like C does. Returns (bit offset within `t`, type id, bitfield size from kflag, kflag).
    fn find(
        &self,
        t: &Ty,
        name: &str,
        budget: &mut u32,
    ) -> Result<Option<(u64, u32, u64, bool)>, BtfError> {
        *budget =
            budget.checked_sub(1).ok_or_else(|| corrupt("anonymous members nest too deep"))?;
        let (start, n) = (t.a as usize, t.vlen as usize);
        let members =
            self.members.get(start..start + n).ok_or_else(|| corrupt("bad member index"))?;
        for &(mname, ty, off) in members {
            let (bit_off, bits) = if t.kflag { (off & 0xff_ffff, off >> 24) } else { (off, 0) };
            let mname = self.name(mname);
            if mname.is_empty() {
                let inner = self.resolve(ty)?;
                if matches!(inner.kind, STRUCT | UNION) {
                    if let Some(hit) = self.find(inner, name, budget)? {
                        return Ok(Some((hit.0 + bit_off as u64, hit.1, hit.2, hit.3)));
                    }
                }
            } else if mname == name {
                return Ok(Some((bit_off as u64, ty, bits as u64, t.kflag)));
            }
        }
        Ok(None)
    }

    /// Member reached by a dotted path from struct (or union) `root`, e.g. ("tcp_sock", "inet_conn.icsk_backoff")
    /// or ("sock", "__sk_common.skc_family"). Anonymous struct/union members are searched transparently
    /// (like C: `sk_rmem_alloc`-style names inside anonymous unions resolve), typedefs/const/volatile are
    /// skipped when descending. Offsets accumulate along the path.
    pub fn member(&self, root: &str, path: &str) -> Result<Field, BtfError> {
        let id = *self.structs.get(root).ok_or_else(|| BtfError::NoStruct(root.to_string()))?;
        let unsupported = |why| BtfError::Unsupported { root: root.into(), path: path.into(), why };
        let (mut t, mut bit_off) = (self.ty(id)?, 0u64);
        let mut hit = (0, 0, 0, false);
        for part in path.split('.') {
            if !matches!(t.kind, STRUCT | UNION) {
                return Err(unsupported(
                    "path goes through a member that is not a struct or union",
                ));
            }
            hit = self
                .find(t, part, &mut FIND_BUDGET.clone())?
                .ok_or_else(|| BtfError::NoMember { root: root.into(), path: path.into() })?;
            bit_off += hit.0;
            t = self.resolve(hit.1)?;
        }
        let (_, ty, mut width, kflag) = hit;
        // Without kflag, a bitfield is an INT member whose encoding has fewer bits than its size.
        if !kflag && t.kind == INT {
            let (bits, int_off) = ((t.a & 0xff) as u64, (t.a >> 16 & 0xff) as u64);
            bit_off += int_off;
            if bits != t.size_or_type as u64 * 8 {
                width = bits;
            }
        }
        let offset =
            |bits: u64| u32::try_from(bits / 8).map_err(|_| unsupported("offset too large"));
        if width == 0 {
            if !bit_off.is_multiple_of(8) {
                return Err(unsupported("not byte aligned"));
            }
            let size = self.byte_size(ty, 0)?.ok_or_else(|| unsupported("type has no size"))?;
            let size = u32::try_from(size).map_err(|_| unsupported("too large"))?;
            return Ok(Field { offset: offset(bit_off)?, size, bit_shift: 0, bit_width: 0 });
        }
        // Smallest naturally aligned load unit that holds every bit of the bitfield.
        for unit in [8u64, 16, 32, 64] {
            let start = bit_off / unit * unit;
            if bit_off + width <= start + unit {
                let (size, bit_shift) = ((unit / 8) as u32, (bit_off - start) as u8);
                return Ok(Field {
                    offset: offset(start)?,
                    size,
                    bit_shift,
                    bit_width: width as u8,
                });
            }
        }
        Err(unsupported("bitfield does not fit an aligned 8-byte load"))
    }

    #[cfg(test)]
    /// Like member() but Ok(None) when the member (last path element) does not exist; Err only if root is missing.
    /// (Also Err if the member exists but cannot be described as a [`Field`], or the BTF is corrupt.)
    pub fn member_opt(&self, root: &str, path: &str) -> Result<Option<Field>, BtfError> {
        match self.member(root, path) {
            Ok(f) => Ok(Some(f)),
            Err(BtfError::NoMember { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Value of `variant` in ENUM or ENUM64 `enum_name` (ENUM64 values above i64::MAX wrap).
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Option<i64> {
        let hit = self.enum_variants(enum_name).into_iter().find(|(n, _)| n == variant);
        hit.map(|(_, v)| v)
    }

    /// All (name, value) pairs of enum `enum_name`; empty if there is no such enum.
    pub fn enum_variants(&self, enum_name: &str) -> Vec<(String, i64)> {
        let Some(t) = self.enums.get(enum_name).and_then(|&id| self.types.get(id as usize)) else {
            return Vec::new();
        };
        let (start, n) = (t.a as usize, t.vlen as usize);
        let vals = self.enumerators.get(start..start + n).unwrap_or_default();
        vals.iter().map(|&(name, v)| (self.name(name).to_string(), v)).collect()
    }

    /// True if a BTF FUNC of that name exists.
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains(name)
    }

    /// True if a STRUCT or UNION of that name exists (a bare FWD declaration does not count).
    #[cfg(test)]
    pub fn has_struct(&self, name: &str) -> bool {
        self.structs.contains_key(name)
    }
}

/// The kernel's BTF, read once per start: aya's parse (for EbpfLoader::btf and
/// FEntry/FExit::load) and ours (struct layouts, enum values, which functions exist).
pub struct KernelBtf {
    /// aya's parse of the same bytes; Err says why aya could not parse it (then fentry/fexit
    /// hooks are skipped with that reason).
    pub aya: Result<aya::Btf, String>,
    lookups: Btf,
}

impl KernelBtf {
    /// Reads /sys/kernel/btf/vmlinux once and parses it for every user.
    pub fn load() -> anyhow::Result<KernelBtf> {
        let path = crate::host::sysfs::VMLINUX_BTF;
        let data = crate::host::sysfs::read_vmlinux_btf().with_context(|| {
            format!("cannot read {path}: kernel BTF is needed (CONFIG_DEBUG_INFO_BTF=y)")
        })?;
        let lookups =
            Btf::parse(&data).with_context(|| format!("cannot parse kernel BTF in {path}"))?;
        let aya = aya::Btf::parse(&data, aya::Endianness::default()).map_err(|e| e.to_string());
        Ok(KernelBtf { aya, lookups })
    }

    /// See [`Btf::member`].
    pub fn member(&self, root: &str, path: &str) -> Result<Field, BtfError> {
        self.lookups.member(root, path)
    }

    /// See [`Btf::enum_value`].
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Option<i64> {
        self.lookups.enum_value(enum_name, variant)
    }

    /// See [`Btf::has_func`].
    pub fn has_func(&self, name: &str) -> bool {
        self.lookups.has_func(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny BTF writer: strings and type records, then `build()` adds the header.
    #[derive(Default)]
    struct B(Vec<u8>, Vec<u8>, u32);

    impl B {
        fn w(&mut self, v: &[u32]) -> &mut Self {
            v.iter().for_each(|x| self.0.extend(x.to_le_bytes()));
            self
        }
        fn s(&mut self, name: &str) -> u32 {
            if self.1.is_empty() {
                self.1.push(0);
            }
            if name.is_empty() {
                return 0;
            }
            self.1.extend(name.as_bytes().iter().chain(&[0]));
            (self.1.len() - name.len() - 1) as u32
        }
        /// Type header; returns the new type id.
        fn t(&mut self, name: &str, kind: u8, kflag: bool, vlen: usize, st: u32) -> u32 {
            let n = self.s(name);
            self.w(&[n, (kind as u32) << 24 | (kflag as u32) << 31 | vlen as u32, st]);
            self.2 += 1;
            self.2
        }
        fn comp(
            &mut self,
            kind: u8,
            name: &str,
            size: u32,
            kflag: bool,
            ms: &[(&str, u32, u32)],
        ) -> u32 {
            let id = self.t(name, kind, kflag, ms.len(), size);
            for &(m, ty, off) in ms {
                let n = self.s(m);
                self.w(&[n, ty, off]);
            }
            id
        }
        fn enm(&mut self, name: &str, kind: u8, signed: bool, vals: &[(&str, i64)]) {
            self.t(name, kind, signed, vals.len(), if kind == ENUM64 { 8 } else { 4 });
            for &(v, x) in vals {
                let n = self.s(v);
                self.w(&[n, x as u32]);
                if kind == ENUM64 {
                    self.w(&[(x >> 32) as u32]);
                }
            }
        }
        fn build(&self) -> Vec<u8> {
            let (tl, sl) = (self.0.len() as u32, self.1.len() as u32);
            let mut out = vec![0x9f, 0xeb, 1, 0];
            [24, 0, tl, tl, sl].iter().for_each(|x| out.extend(u32::to_le_bytes(*x)));
            [&self.0[..], &self.1[..]].concat().iter().for_each(|&x| out.push(x));
            out
        }
    }

    /// Note `b.w(..)` before `.t(..)` appends the trailing data of the previous type.
    fn sample() -> Vec<u8> {
        let mut b = B::default();
        let u32t = b.t("unsigned int", INT, false, 0, 4);
        let u8t = b.w(&[32]).t("unsigned char", INT, false, 0, 1);
        let u16t = b.w(&[8]).t("unsigned short", INT, false, 0, 2);
        let bits3 = b.w(&[16]).t("unsigned int", INT, false, 0, 4); // legacy bitfield int
                                                                    // Every other kind comes before the structs, so a wrong record size derails the test.
        let proto = b.w(&[3]).t("", FUNC_PROTO, false, 2, u32t);
        b.w(&[0, u32t, 0, u8t]).t("do_thing", FUNC, false, 0, proto);
        let arr = b.t("", ARRAY, false, 0, 0);
        let var = b.w(&[u16t, u32t, 3]).t("some_var", 14, false, 0, u32t);
        b.w(&[1]).t(".data", DATASEC, false, 1, 4);
        b.w(&[var, 0, 4]).t("double", FLOAT, false, 0, 8);
        b.t("tag", 17, false, 0, u32t);
        b.w(&[u32::MAX]).t("user", 18, false, 0, u32t);
        b.t("outer", 7, false, 0, 0); // FWD, then an empty struct of the same name
        b.comp(STRUCT, "outer", 0, false, &[]);
        let tdef = b.t("u32", 8, false, 0, u32t);
        let cu16 = b.t("", 10, false, 0, u16t);
        let inner = b.comp(STRUCT, "inner", 8, false, &[("a", tdef, 0), ("b", cu16, 32)]);
        let anon = b.comp(UNION, "", 4, false, &[("x", u32t, 0), ("y", u16t, 0)]);
        let ptr = b.t("", PTR, false, 0, inner);
        let ms =
            [("first", u8t, 0), ("in", inner, 64), ("", anon, 128), ("bf", u32t, 4 << 24 | 164)];
        b.comp(
            STRUCT,
            "outer",
            40,
            true,
            &[&ms[..], &[("arr", arr, 192), ("p", ptr, 256)]].concat(),
        );
        let ms = [("lo", 0), ("mid", 7), ("cross", 14), ("hi", 30), ("top", 61)]
            .map(|(n, o)| (n, bits3, o));
        b.comp(STRUCT, "legacy", 8, false, &[&ms[..], &[("n", u32t, 32)]].concat());
        b.enm("color", ENUM, true, &[("RED", 0), ("BLUE", -1)]);
        b.enm("flags", ENUM, false, &[("ALL", 0xffff_ffff)]);
        b.enm("big", ENUM64, true, &[("HUGE", 1 << 40), ("NEG", -5)]);
        b.build()
    }

    fn f(offset: u32, size: u32, bit_shift: u8, bit_width: u8) -> Field {
        Field { offset, size, bit_shift, bit_width }
    }

    #[test]
    fn hand_built() {
        let btf = Btf::parse(&sample()).unwrap();
        assert!(btf.has_struct("outer") && btf.has_struct("inner") && !btf.has_struct("nope"));
        assert!(btf.has_func("do_thing") && !btf.has_func("outer"));
        for (root, path, want) in [
            ("outer", "first", f(0, 1, 0, 0)),
            ("outer", "in", f(8, 8, 0, 0)),
            ("outer", "in.a", f(8, 4, 0, 0)),
            ("outer", "in.b", f(12, 2, 0, 0)),
            ("outer", "x", f(16, 4, 0, 0)),
            ("outer", "y", f(16, 2, 0, 0)),
            ("outer", "bf", f(20, 1, 4, 4)),
            ("outer", "arr", f(24, 6, 0, 0)),
            ("outer", "p", f(32, 8, 0, 0)),
            ("legacy", "lo", f(0, 1, 0, 3)),
            ("legacy", "mid", f(0, 2, 7, 3)),
            ("legacy", "cross", f(0, 4, 14, 3)),
            ("legacy", "hi", f(0, 8, 30, 3)),
            ("legacy", "top", f(7, 1, 5, 3)),
            ("legacy", "n", f(4, 4, 0, 0)),
        ] {
            assert_eq!(btf.member(root, path).unwrap(), want, "{root}.{path}");
        }
        let e = btf.member("outer", "zz").unwrap_err().to_string();
        assert_eq!(e, "struct outer has no member zz");
        assert!(matches!(btf.member("nope", "x"), Err(BtfError::NoStruct(_))));
        assert!(matches!(btf.member("outer", "first.x"), Err(BtfError::Unsupported { .. })));
        assert_eq!(btf.member_opt("outer", "in.zz").unwrap(), None);
        assert_eq!(btf.member_opt("outer", "").unwrap(), None); // must not match anonymous members
        assert_eq!(btf.member_opt("outer", "in.b").unwrap(), Some(f(12, 2, 0, 0)));
        assert!(btf.member_opt("nope", "x").is_err());

        assert_eq!(btf.enum_value("color", "BLUE"), Some(-1));
        assert_eq!(btf.enum_value("flags", "ALL"), Some(0xffff_ffff));
        assert_eq!(btf.enum_value("big", "HUGE"), Some(1 << 40));
        assert_eq!(btf.enum_value("big", "NEG"), Some(-5));
        assert_eq!(btf.enum_value("big", "nope"), None);
        assert_eq!(btf.enum_variants("color"), [("RED".into(), 0), ("BLUE".into(), -1)]);
        assert!(btf.enum_variants("nope").is_empty());
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let good = sample();
        let patched = |at: usize, v: u32| {
            let mut bad = good.clone();
            bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
            Btf::parse(&bad).unwrap_err().to_string()
        };
        assert!(patched(0, 0x1234).contains("magic"));
        assert!(patched(12, good.len() as u32).contains("outside")); // type_len
        assert!(patched(24, 0xfff0).contains("string offset")); // first type's name
        for n in 0..good.len() {
            assert!(Btf::parse(&good[..n]).is_err(), "prefix {n} parsed");
        }
        // Flip bytes everywhere: anything may happen except a panic or a hang.
        for (i, x) in (0..good.len()).flat_map(|i| [(i, 0x01u8), (i, 0x80), (i, 0xff)]) {
            let mut bad = good.clone();
            bad[i] ^= x;
            if let Ok(btf) = Btf::parse(&bad) {
                for p in ["first", "in.b", "x", "bf", "arr", "p", "zz", "lo", "mid", "hi", "top"] {
                    let _ = (btf.member("outer", p), btf.member("legacy", p));
                }
                let _ = btf.enum_variants("big");
            }
        }
    }

    #[test]
    fn vmlinux() {
        let path = std::path::Path::new(crate::host::sysfs::VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipping: no {} (kernel without CONFIG_DEBUG_INFO_BTF)", path.display());
            return;
        }
        let t = std::time::Instant::now();
        let kernel = KernelBtf::load().unwrap();
        let btf = &kernel.lookups;
        eprintln!("parsed {btf:?} and aya's in {:?}", t.elapsed());
        assert!(kernel.aya.is_ok(), "{:?}", kernel.aya.as_ref().err());
        crate::kernel::offsets::resolve(&kernel).unwrap();
        let m = |r: &str, p: &str| btf.member(r, p).unwrap();
        assert_eq!(m("tcp_sock", "rcv_wnd").size, 4);
        assert_eq!(m("tcp_sock", "inet_conn.icsk_inet.sk.__sk_common.skc_family").size, 2);
        assert_eq!(m("sock", "__sk_common.skc_family").size, 2);
        assert_eq!(m("sock", "sk_backlog.rmem_alloc").size, 4);
        for p in ["rx_opt.rcv_wscale", "rx_opt.snd_wscale"] {
            let f = m("tcp_sock", p);
            assert_eq!(f.bit_width, 4, "{p}");
            assert!(f.bit_shift as u32 + 4 <= f.size * 8 && f.offset % f.size == 0, "{p}: {f:?}");
        }
        // Paths through the embedded struct chain agree with looking the member up directly.
        let direct = m("inet_connection_sock", "icsk_backoff");
        assert_eq!(m("tcp_sock", "inet_conn.icsk_backoff"), direct);
        assert_eq!((direct.size, direct.bit_width), (1, 0));
        assert_eq!(m("tcp_sock", "inet_conn.icsk_inet.sk.sk_rcvbuf"), m("sock", "sk_rcvbuf"));
        assert_eq!(btf.member_opt("tcp_sock", "no_such_member").unwrap(), None);
        assert!(btf.enum_value("skb_drop_reason", "SKB_DROP_REASON_TCP_ZEROWINDOW").is_some());
        assert!(btf.has_func("__tcp_select_window") && btf.has_func("tcp_send_probe0"));
        assert!(btf.has_struct("tcp_sock") && !btf.has_func("tcp_sock"));
        let tcp = ["rcv_wnd", "rx_opt.rcv_wscale", "rx_opt.snd_wscale", "snd_wnd"]
            .map(|p| ("tcp_sock", p));
        let icsk =
            ["icsk_backoff", "icsk_probes_out", "icsk_rto"].map(|p| ("inet_connection_sock", p));
        for (r, p) in tcp.into_iter().chain(icsk).chain([("sock", "sk_rcvbuf")]) {
            eprintln!("{r}.{p}: {:?}", m(r, p));
        }
    }
}

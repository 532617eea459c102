//! The running kernel's BTF, read once per start and parsed by maintained crates: aya's parse
//! for the loader and for fentry/fexit, btfparse's for struct layouts and enum values. What this
//! file adds is the index by name and how the kernel programs read a member (`Field`).

use std::collections::{HashMap, HashSet};
use std::fmt;

use anyhow::Context as _;
use btfparse::{Offset, Readable, TypeInformation, TypeVariant};

use crate::host::sysfs;

/// Where a struct member lives, as the BPF side reads it: read `size` bytes (1, 2, 4 or 8) at byte
/// `offset`, little-endian, then `(value >> bit_shift) & mask(bit_width)`; bit_width 0 = whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
    pub bit_shift: u8,
    pub bit_width: u8,
}

/// Errors from parsing BTF or looking a member up in it.
#[derive(Debug)]
pub enum BtfError {
    /// btfparse could not read the BTF.
    Parse(String),
    /// No struct or union of this name.
    NoStruct(String),
    /// The member path does not lead to a member the kernel programs can read.
    Member { root: String, path: String, why: String },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtfError::Parse(why) => write!(f, "unreadable btf: {why}"),
            BtfError::NoStruct(name) => write!(f, "struct {name} not found in btf"),
            BtfError::Member { root, path, why } => write!(f, "struct {root} member {path}: {why}"),
        }
    }
}

impl std::error::Error for BtfError {}

/// The BTF bytes as btfparse reads them.
struct Bytes<'a>(&'a [u8]);

impl Readable for Bytes<'_> {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let bytes = start.checked_add(buffer.len()).and_then(|end| self.0.get(start..end));
        let bytes = bytes.ok_or_else(|| {
            btfparse::Error::new(btfparse::ErrorKind::EOF, "read past the end of the btf")
        })?;
        buffer.copy_from_slice(bytes);
        Ok(())
    }
}

/// The kernel's BTF, parsed, with name indexes.
pub struct KernelBtf {
    /// aya's parse of the same bytes, for EbpfLoader::btf and FEntry/FExit::load; Err says why
    /// aya could not parse it (then fentry/fexit hooks are skipped with that reason).
    pub aya: Result<aya::Btf, String>,
    types: TypeInformation,
    /// Struct and union ids by name, a complete definition preferred over a forward one
    /// (btfparse's own name map keeps the last type of any kind with a name).
    structs: HashMap<String, u32>,
    enums: HashMap<String, u32>,
    funcs: HashSet<String>,
}

/// Summary only; the tables are far too large to print.
impl fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types = self.types.get().len();
        write!(f, "KernelBtf {{ {types} types, {} structs }}", self.structs.len())
    }
}

impl KernelBtf {
    /// Reads /sys/kernel/btf/vmlinux once and parses it for every user.
    pub fn load() -> anyhow::Result<KernelBtf> {
        let path = sysfs::VMLINUX_BTF;
        let data = sysfs::read_vmlinux_btf().with_context(|| {
            format!("cannot read {path}: kernel BTF is needed (CONFIG_DEBUG_INFO_BTF=y)")
        })?;
        KernelBtf::parse(&data).with_context(|| format!("cannot parse kernel BTF in {path}"))
    }

    /// Parses raw little-endian BTF; returns an error (never panics) on corrupt input.
    pub fn parse(data: &[u8]) -> Result<KernelBtf, BtfError> {
        let types = TypeInformation::new(&Bytes(data))
            .map_err(|e| BtfError::Parse(e.message().to_string()))?;
        let aya = aya::Btf::parse(data, aya::Endianness::default()).map_err(|e| e.to_string());
        let (mut structs, mut enums, mut funcs) = (HashMap::new(), HashMap::new(), HashSet::new());
        // (id, complete) of the type chosen so far for each name.
        let prefer = |map: &mut HashMap<String, (u32, bool)>, name: &str, id, complete| {
            let slot = map.entry(name.to_string()).or_insert((id, complete));
            if complete && !slot.1 {
                *slot = (id, complete);
            }
        };
        for (&id, ty) in types.get() {
            match ty {
                TypeVariant::Struct(s) => {
                    if let Some(name) = s.name() {
                        prefer(&mut structs, name, id, *s.size() > 0);
                    }
                }
                TypeVariant::Union(u) => {
                    if let Some(name) = u.name() {
                        prefer(&mut structs, name, id, *u.size() > 0);
                    }
                }
                TypeVariant::Enum(e) => {
                    if let Some(name) = e.name() {
                        prefer(&mut enums, name, id, !e.named_value_list().is_empty());
                    }
                }
                TypeVariant::Enum64(e) => {
                    if let Some(name) = e.name() {
                        prefer(&mut enums, name, id, !e.named_value_list().is_empty());
                    }
                }
                TypeVariant::Func(f) => {
                    if let Some(name) = f.name() {
                        funcs.insert(name.clone());
                    }
                }
                _ => {}
            }
        }
        let ids = |map: HashMap<String, (u32, bool)>| map.into_iter().map(|(n, (id, _))| (n, id));
        Ok(KernelBtf {
            aya,
            types,
            structs: ids(structs).collect(),
            enums: ids(enums).collect(),
            funcs,
        })
    }

    /// Member reached by a dotted path from struct (or union) `root`, e.g. ("tcp_sock",
    /// "inet_conn.icsk_backoff"). Anonymous struct/union members are searched like C does, and
    /// offsets accumulate along the path.
    pub fn member(&self, root: &str, path: &str) -> Result<Field, BtfError> {
        let id = *self.structs.get(root).ok_or_else(|| BtfError::NoStruct(root.to_string()))?;
        let unusable =
            |why: &str| BtfError::Member { root: root.into(), path: path.into(), why: why.into() };
        // An empty path would name the struct itself, not a member.
        if path.split('.').any(str::is_empty) {
            return Err(unusable("empty member name"));
        }
        let (ty, offset) = self.types.offset_of(id, path).map_err(|e| unusable(e.message()))?;
        let (bit_off, width) = match offset {
            Offset::ByteOffset(byte) => {
                // kind_flag 0 would put a bitfield's width in its int type: the kernels that
                // publish vmlinux BTF do not, but a wrong read must not pass silently.
                if let Some(TypeVariant::Int(int)) = self.resolved(ty) {
                    if *int.offset() != 0 || *int.bits() != int.size() * 8 {
                        return Err(unusable("bitfield in the pre-kind_flag encoding"));
                    }
                }
                let size = self.byte_size(ty).ok_or_else(|| unusable("type has no size"))?;
                let size = u32::try_from(size).map_err(|_| unusable("too large"))?;
                return Ok(Field { offset: byte, size, bit_shift: 0, bit_width: 0 });
            }
            Offset::BitOffsetAndSize(_, 0) => return Err(unusable("not byte aligned")),
            Offset::BitOffsetAndSize(bit_off, width) => (u64::from(bit_off), u64::from(width)),
        };
        // Smallest naturally aligned load unit that holds every bit of the bitfield.
        for unit in [8u64, 16, 32, 64] {
            let start = bit_off / unit * unit;
            if bit_off + width <= start + unit {
                return Ok(Field {
                    offset: u32::try_from(start / 8).map_err(|_| unusable("offset too large"))?,
                    size: (unit / 8) as u32,
                    bit_shift: (bit_off - start) as u8,
                    bit_width: width as u8,
                });
            }
        }
        Err(unusable("bitfield does not fit an aligned 8-byte load"))
    }

    /// The type behind typedefs and qualifiers, or None for a bad id or a chain too long.
    fn resolved(&self, mut id: u32) -> Option<TypeVariant> {
        // Bounds the walk so a cyclic (corrupt) chain terminates.
        for _ in 0..64 {
            match self.types.from_id(id)? {
                TypeVariant::Typedef(t) => id = *t.tid(),
                TypeVariant::Const(t) => id = *t.tid(),
                TypeVariant::Volatile(t) => id = *t.tid(),
                TypeVariant::Restrict(t) => id = *t.tid(),
                TypeVariant::TypeTag(t) => id = *t.tid(),
                other => return Some(other),
            }
        }
        None
    }

    /// Size in bytes of type `id`. Pointers are 8 bytes: the kernels traced are 64-bit (btfparse
    /// would infer it from `struct list_head`, which small BTF may lack).
    fn byte_size(&self, id: u32) -> Option<usize> {
        match self.resolved(id)? {
            TypeVariant::Ptr(_) => Some(8),
            _ => self.types.size_of(id).ok(),
        }
    }

    /// Value of `variant` in ENUM or ENUM64 `enum_name` (ENUM64 values above i64::MAX wrap).
    pub fn enum_value(&self, enum_name: &str, variant: &str) -> Option<i64> {
        let id = *self.enums.get(enum_name)?;
        match self.types.from_id(id)? {
            TypeVariant::Enum(e) => {
                let named = e.named_value_list().iter().find(|v| v.name == variant)?;
                Some(match named.value {
                    btfparse::Integer32Value::Signed(v) => i64::from(v),
                    btfparse::Integer32Value::Unsigned(v) => i64::from(v),
                })
            }
            TypeVariant::Enum64(e) => {
                let named = e.named_value_list().iter().find(|v| v.name == variant)?;
                Some(match named.value {
                    btfparse::Integer64Value::Signed(v) => v,
                    btfparse::Integer64Value::Unsigned(v) => v as i64,
                })
            }
            _ => None,
        }
    }

    /// True if a BTF FUNC of that name exists.
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT: u8 = 1;
    const PTR: u8 = 2;
    const ARRAY: u8 = 3;
    const STRUCT: u8 = 4;
    const UNION: u8 = 5;
    const ENUM: u8 = 6;
    const FWD: u8 = 7;
    const TYPEDEF: u8 = 8;
    const CONST: u8 = 10;
    const FUNC: u8 = 12;
    const FUNC_PROTO: u8 = 13;
    const ENUM64: u8 = 19;

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
        let u64t = b.w(&[16]).t("unsigned long long", INT, false, 0, 8);
        let bits3 = b.w(&[64]).t("unsigned int", INT, false, 0, 4); // pre-kind_flag bitfield
        let proto = b.w(&[3]).t("", FUNC_PROTO, false, 2, u32t);
        b.w(&[0, u32t, 0, u8t]).t("do_thing", FUNC, false, 0, proto);
        let arr = b.t("", ARRAY, false, 0, 0);
        b.w(&[u16t, u32t, 3]).t("outer", FWD, false, 0, 0); // a forward declaration first
        let tdef = b.t("u32", TYPEDEF, false, 0, u32t);
        let cu16 = b.t("", CONST, false, 0, u16t);
        let inner = b.comp(STRUCT, "inner", 8, false, &[("a", tdef, 0), ("b", cu16, 32)]);
        let anon = b.comp(UNION, "", 4, false, &[("x", u32t, 0), ("y", u16t, 0)]);
        let ptr = b.t("", PTR, false, 0, inner);
        let ms =
            [("first", u8t, 0), ("in", inner, 64), ("", anon, 128), ("bf", u32t, 4 << 24 | 164)];
        let bits = [("mid", 7), ("cross", 14), ("hi", 30), ("top", 61)]
            .map(|(n, o)| (n, u64t, 3 << 24 | (320 + o)));
        b.comp(
            STRUCT,
            "outer",
            48,
            true,
            &[&ms[..], &[("arr", arr, 192), ("p", ptr, 256)], &bits[..]].concat(),
        );
        b.comp(STRUCT, "legacy", 4, false, &[("lo", bits3, 0)]);
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
        let btf = KernelBtf::parse(&sample()).unwrap();
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
            ("outer", "mid", f(40, 2, 7, 3)),
            ("outer", "cross", f(40, 4, 14, 3)),
            ("outer", "hi", f(40, 8, 30, 3)),
            ("outer", "top", f(47, 1, 5, 3)),
        ] {
            assert_eq!(btf.member(root, path).unwrap(), want, "{root}.{path}");
        }
        let e = btf.member("outer", "zz").unwrap_err().to_string();
        assert!(e.starts_with("struct outer member zz: "), "{e}");
        assert!(matches!(btf.member("nope", "x"), Err(BtfError::NoStruct(_))));
        assert!(btf.member("outer", "first.x").is_err());
        assert!(btf.member("outer", "in.zz").is_err());
        assert!(btf.member("outer", "").is_err()); // must not match anonymous members
        assert!(btf.member("legacy", "lo").is_err()); // refused rather than read whole

        assert_eq!(btf.enum_value("color", "BLUE"), Some(-1));
        assert_eq!(btf.enum_value("flags", "ALL"), Some(0xffff_ffff));
        assert_eq!(btf.enum_value("big", "HUGE"), Some(1 << 40));
        assert_eq!(btf.enum_value("big", "NEG"), Some(-5));
        assert_eq!(btf.enum_value("big", "nope"), None);
        assert_eq!(btf.enum_value("nope", "RED"), None);
    }

    #[test]
    fn vmlinux() {
        let path = std::path::Path::new(sysfs::VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipping: no {} (kernel without CONFIG_DEBUG_INFO_BTF)", path.display());
            return;
        }
        let t = std::time::Instant::now();
        let btf = KernelBtf::load().unwrap();
        eprintln!("parsed {btf:?} in {:?}", t.elapsed());
        assert!(btf.aya.is_ok(), "{:?}", btf.aya.as_ref().err());
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
        assert!(btf.member("tcp_sock", "no_such_member").is_err());
        assert!(btf.enum_value("skb_drop_reason", "SKB_DROP_REASON_TCP_ZEROWINDOW").is_some());
        assert!(btf.has_func("__tcp_select_window") && btf.has_func("tcp_send_probe0"));
        assert!(!btf.has_func("tcp_sock"));
        // Every field the kernel programs read resolves.
        crate::kernel::offsets::resolve(&btf).unwrap();
    }
}

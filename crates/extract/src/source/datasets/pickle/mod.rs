//! A minimal Python pickle reader (protocols 0-5, the opcodes that `pickle.dump` / Python 2's
//! `cPickle.dump` emit for dicts of lists, strings and NumPy arrays, and that `torch.save`
//! emits for checkpoints), enough for the CIFAR-100 python batches and PyTorch's `.pth` files.
//! Nothing is instantiated and no code runs: globals are names ([`Py::Global`]), `REDUCE` /
//! `BUILD` are kept as values ([`Py::Object`]), persistent ids as [`Py::Persistent`];
//! [`Py::ndarray_u8`] recognises NumPy's `_reconstruct` + state tuple. The one exception:
//! `collections.OrderedDict()` (and Python 2's `OrderedDict([[k, v], ...])`) becomes a
//! [`Py::Dict`], so that the `SETITEMS` which follow fill it as they fill a dict.
//!
//! [`parse_at`] reads one pickle from an offset and says where it ended (a legacy `torch.save`
//! file is five pickles in a row) and which globals it named.

use std::collections::HashMap;
use std::rc::Rc;

#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Python 2 `str` and Python 3 `bytes`.
    Bytes(Rc<Vec<u8>>),
    Str(String),
    List(Vec<Py>),
    Tuple(Vec<Py>),
    Dict(Vec<(Py, Py)>),
    /// An integer too wide for an `i64` (a 10-byte `LONG1`: `torch.save`'s magic number),
    /// as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// `(module, name)` of a `GLOBAL` / `STACK_GLOBAL`, as written (Python 2 names unmapped).
    Global(String, String),
    /// `persistent_load(pid)` (`BINPERSID` / `PERSID`): what the pickler's `persistent_id`
    /// returned, e.g. torch's `('storage', FloatStorage, key, location, numel)`.
    Persistent(Box<Py>),
    /// `callable(*args)`, then `__setstate__(state)` when built.
    Object {
        callable: Box<Py>,
        args: Box<Py>,
        state: Option<Box<Py>>,
    },
    Mark,
}

impl Py {
    /// A text key, whether pickled as `str` or as Python 2 bytes.
    pub fn as_key(&self) -> Option<&str> {
        match self {
            Py::Str(s) => Some(s),
            Py::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Py> {
        match self {
            Py::Dict(kv) => kv
                .iter()
                .find(|(k, _)| k.as_key() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// `(shape, bytes)` of a NumPy uint8 array (C order).
    pub fn ndarray_u8(&self) -> Result<(Vec<usize>, Rc<Vec<u8>>), String> {
        let Py::Object {
            callable,
            state: Some(state),
            ..
        } = self
        else {
            return Err("not a NumPy array".into());
        };
        if !matches!(&**callable, Py::Global(_, name) if name == "_reconstruct") {
            return Err("not a NumPy array".into());
        }
        let Py::Tuple(st) = &**state else {
            return Err("NumPy array state is not a tuple".into());
        };
        let [_, Py::Tuple(shape), dtype, fortran, raw] = &st[..] else {
            return Err(format!(
                "unexpected NumPy array state of length {}",
                st.len()
            ));
        };
        unreachable_fortran(fortran)?;
        let descr = match dtype {
            Py::Object { args, .. } => match &**args {
                Py::Tuple(a) => a.first().and_then(Py::as_key).unwrap_or("?").to_owned(),
                _ => "?".into(),
            },
            _ => "?".into(),
        };
        if descr != "u1" {
            return Err(format!("NumPy dtype is `{descr}`, expected `u1` (uint8)"));
        }
        let shape: Vec<usize> = shape
            .iter()
            .map(|d| if let Py::Int(v) = d { *v as usize } else { 0 })
            .collect();
        let Py::Bytes(bytes) = raw else {
            return Err("NumPy array data is not a byte string".into());
        };
        if bytes.len() != shape.iter().product::<usize>() {
            return Err(format!(
                "NumPy array of shape {shape:?} holds {} bytes",
                bytes.len()
            ));
        }
        Ok((shape, bytes.clone()))
    }

    /// A list (or tuple) of ints.
    pub fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Py::List(v) | Py::Tuple(v) => v
                .iter()
                .map(|x| if let Py::Int(i) = x { Some(*i) } else { None })
                .collect(),
            _ => None,
        }
    }

    /// A list of strings.
    pub fn strings(&self) -> Option<Vec<String>> {
        match self {
            Py::List(v) | Py::Tuple(v) => v.iter().map(|x| x.as_key().map(str::to_owned)).collect(),
            _ => None,
        }
    }
}

fn unreachable_fortran(f: &Py) -> Result<(), String> {
    match f {
        Py::Bool(true) | Py::Int(1) => Err("Fortran-ordered NumPy arrays are not supported".into()),
        _ => Ok(()),
    }
}

/// How deep values may nest (CIFAR batches and `.pth` state dicts nest fewer than 10 levels);
/// deeper ones are refused, so that cloning, comparing and dropping them cannot overflow the
/// stack.
const MAX_DEPTH: usize = 256;

/// (nesting depth, number of values) of `p`; values on the stack never nest deeper than
/// [`MAX_DEPTH`], so the recursion is bounded.
fn measure(p: &Py) -> (usize, usize) {
    let fold = |it: &mut dyn Iterator<Item = &Py>| {
        it.map(measure)
            .fold((0, 0), |(d, n), (cd, cn)| (d.max(cd), n + cn))
    };
    let (d, n) = match p {
        Py::List(v) | Py::Tuple(v) => fold(&mut v.iter()),
        Py::Dict(kv) => fold(&mut kv.iter().flat_map(|(k, v)| [k, v])),
        Py::Persistent(p) => fold(&mut std::iter::once(&**p)),
        Py::Object {
            callable,
            args,
            state,
        } => fold(
            &mut [Some(&**callable), Some(&**args), state.as_deref()]
                .into_iter()
                .flatten(),
        ),
        _ => return (0, 1),
    };
    (d + 1, n + 1)
}

/// Parse a pickle stream.
pub fn parse(data: &[u8]) -> Result<Py, String> {
    parse_at(data, 0).map(|p| p.value)
}

/// One pickle read by [`parse_at`].
#[derive(Debug)]
pub struct Parsed {
    /// What the pickle holds.
    pub value: Py,
    /// The offset just after its `STOP`: where the next pickle of the stream starts.
    pub end: usize,
    /// Every `(module, name)` its `GLOBAL` / `STACK_GLOBAL` opcodes named, in order, including
    /// those that did not end up in `value`.
    pub globals: Vec<(String, String)>,
}

/// Parse the pickle that starts at byte `start` of `data` (errors name absolute offsets).
pub fn parse_at(data: &[u8], start: usize) -> Result<Parsed, String> {
    let mut pos = start.min(data.len());
    let mut globals: Vec<(String, String)> = Vec::new();
    let mut stack: Vec<Py> = Vec::new();
    let mut memo: HashMap<u32, Py> = HashMap::new();
    // values copied through the memo, bounded: a few bytes of memo references can otherwise
    // ask for exponentially many copies ("billion laughs")
    let mut copied = 0usize;
    let budget = 64 * data.len() + (1 << 20);
    let mut copy = |p: &Py| -> Result<Py, String> {
        copied += measure(p).1;
        if copied > budget {
            return Err(format!(
                "memo references expand to more than {budget} values (a malformed or hostile pickle)"
            ));
        }
        Ok(p.clone())
    };
    // a container made of `items` must not nest deeper than MAX_DEPTH
    let nest = |items: &mut dyn Iterator<Item = &Py>| -> Result<(), String> {
        match items.map(|p| measure(p).0).max() {
            Some(d) if d + 1 > MAX_DEPTH => {
                Err(format!("values nest deeper than {MAX_DEPTH} levels"))
            }
            _ => Ok(()),
        }
    };
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], String> {
        // a length field can be anything up to 2^64 − 1: no overflow on the way to "truncated"
        let s = pos
            .checked_add(n)
            .and_then(|end| data.get(*pos..end))
            .ok_or_else(|| format!("truncated at byte {}", *pos))?;
        *pos += n;
        Ok(s)
    };
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64);
    let pop = |stack: &mut Vec<Py>| stack.pop().ok_or_else(|| "stack underflow".to_string());
    let pop_mark = |stack: &mut Vec<Py>| -> Result<Vec<Py>, String> {
        let m = stack
            .iter()
            .rposition(|x| *x == Py::Mark)
            .ok_or("MARK not found")?;
        let items = stack.split_off(m + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = *take(&mut pos, 1)?.first().unwrap();
        match op {
            0x80 => {
                take(&mut pos, 1)?;
            }
            0x95 => {
                take(&mut pos, 8)?;
            }
            b'.' => {
                return Ok(Parsed {
                    value: pop(&mut stack)?,
                    end: pos,
                    globals,
                });
            }
            b'(' => stack.push(Py::Mark),
            b'}' => stack.push(Py::Dict(Vec::new())),
            b']' => stack.push(Py::List(Vec::new())),
            b')' => stack.push(Py::Tuple(Vec::new())),
            b'N' => stack.push(Py::None),
            0x88 => stack.push(Py::Bool(true)),
            0x89 => stack.push(Py::Bool(false)),
            b'K' => stack.push(Py::Int(take(&mut pos, 1)?[0] as i64)),
            b'M' => stack.push(Py::Int(le(take(&mut pos, 2)?) as i64)),
            b'J' => stack.push(Py::Int(le(take(&mut pos, 4)?) as u32 as i32 as i64)),
            0x8a | 0x8b => {
                // LONG1 (1-byte length) / LONG4 (4-byte length): little-endian two's complement
                let n = if op == 0x8a {
                    take(&mut pos, 1)?[0] as usize
                } else {
                    le(take(&mut pos, 4)?) as usize
                };
                let b = take(&mut pos, n)?;
                if n > 8 {
                    stack.push(Py::BigInt(b.to_vec()));
                } else {
                    let mut v = le(b) as i64;
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    stack.push(Py::Int(v));
                }
            }
            b'G' => stack.push(Py::Float(f64::from_be_bytes(
                take(&mut pos, 8)?.try_into().unwrap(),
            ))),
            b'I' | b'L' => {
                let line = read_line(data, &mut pos)?;
                let t = line.trim_end_matches('L');
                stack.push(match t {
                    "01" => Py::Bool(true),
                    "00" => Py::Bool(false),
                    _ => match t.parse() {
                        Ok(v) => Py::Int(v),
                        Err(_) => Py::BigInt(decimal_le(t).ok_or(format!("bad INT `{line}`"))?),
                    },
                });
            }
            b'U' | b'C' => {
                let n = take(&mut pos, 1)?[0] as usize;
                stack.push(Py::Bytes(Rc::new(take(&mut pos, n)?.to_vec())));
            }
            b'T' | b'B' => {
                let n = le(take(&mut pos, 4)?) as usize;
                stack.push(Py::Bytes(Rc::new(take(&mut pos, n)?.to_vec())));
            }
            0x8e => {
                let n = le(take(&mut pos, 8)?) as usize;
                stack.push(Py::Bytes(Rc::new(take(&mut pos, n)?.to_vec())));
            }
            0x8c => {
                let n = take(&mut pos, 1)?[0] as usize;
                stack.push(Py::Str(
                    String::from_utf8_lossy(take(&mut pos, n)?).into_owned(),
                ));
            }
            b'X' => {
                let n = le(take(&mut pos, 4)?) as usize;
                stack.push(Py::Str(
                    String::from_utf8_lossy(take(&mut pos, n)?).into_owned(),
                ));
            }
            0x8d => {
                let n = le(take(&mut pos, 8)?) as usize;
                stack.push(Py::Str(
                    String::from_utf8_lossy(take(&mut pos, n)?).into_owned(),
                ));
            }
            b'c' => {
                let m = read_line(data, &mut pos)?;
                let n = read_line(data, &mut pos)?;
                globals.push((m.clone(), n.clone()));
                stack.push(Py::Global(m, n));
            }
            0x93 => {
                let n = pop(&mut stack)?;
                let m = pop(&mut stack)?;
                let (m, n) = (
                    m.as_key().unwrap_or("").to_owned(),
                    n.as_key().unwrap_or("").to_owned(),
                );
                globals.push((m.clone(), n.clone()));
                stack.push(Py::Global(m, n));
            }
            b'Q' => {
                // BINPERSID: the id is the value on the stack
                let pid = pop(&mut stack)?;
                nest(&mut std::iter::once(&pid))?;
                stack.push(Py::Persistent(Box::new(pid)));
            }
            b'P' => {
                // PERSID (protocol 0): the id is a line of text
                let pid = read_line(data, &mut pos)?;
                stack.push(Py::Persistent(Box::new(Py::Str(pid))));
            }
            b'q' => {
                let k = take(&mut pos, 1)?[0] as u32;
                let top = stack.last().ok_or("BINPUT on empty stack")?;
                memo.insert(k, copy(top)?);
            }
            b'r' => {
                let k = le(take(&mut pos, 4)?) as u32;
                let top = stack.last().ok_or("LONG_BINPUT on empty stack")?;
                memo.insert(k, copy(top)?);
            }
            0x94 => {
                let k = memo.len() as u32;
                let top = stack.last().ok_or("MEMOIZE on empty stack")?;
                memo.insert(k, copy(top)?);
            }
            b'h' => {
                let k = take(&mut pos, 1)?[0] as u32;
                let v = memo.get(&k).ok_or(format!("memo {k} missing"))?;
                stack.push(copy(v)?);
            }
            b'j' => {
                let k = le(take(&mut pos, 4)?) as u32;
                let v = memo.get(&k).ok_or(format!("memo {k} missing"))?;
                stack.push(copy(v)?);
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                stack.push(Py::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("stack underflow".into());
                }
                let items = stack.split_off(stack.len() - n);
                nest(&mut items.iter())?;
                stack.push(Py::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                stack.push(Py::List(items));
            }
            b'd' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                stack.push(Py::Dict(pairs(items)?));
            }
            b'a' => {
                let v = pop(&mut stack)?;
                nest(&mut std::iter::once(&v))?;
                match stack.last_mut() {
                    Some(Py::List(l)) => l.push(v),
                    other => return Err(not_a("APPEND", "list", other)),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                match stack.last_mut() {
                    Some(Py::List(l)) => l.extend(items),
                    other => return Err(not_a("APPENDS", "list", other)),
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                nest(&mut [&k, &v].into_iter())?;
                match stack.last_mut() {
                    Some(Py::Dict(d)) => d.push((k, v)),
                    other => return Err(not_a("SETITEM", "dict", other)),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                let kv = pairs(items)?;
                match stack.last_mut() {
                    Some(Py::Dict(d)) => d.extend(kv),
                    other => return Err(not_a("SETITEMS", "dict", other)),
                }
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                nest(&mut [&callable, &args].into_iter())?;
                stack.push(match ordered_dict(&callable, args) {
                    Ok(d) => d,
                    Err(args) => Py::Object {
                        callable: Box::new(callable),
                        args: Box::new(args),
                        state: None,
                    },
                });
            }
            b'b' => {
                let st = pop(&mut stack)?;
                nest(&mut std::iter::once(&st))?;
                match stack.last_mut() {
                    Some(Py::Object { state, .. }) => *state = Some(Box::new(st)),
                    Some(Py::Dict(d)) => {
                        if let Py::Dict(more) = st {
                            d.extend(more)
                        }
                    }
                    _ => return Err("BUILD on an unsupported object".into()),
                }
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode {other:#04x} at byte {}",
                    pos - 1
                ));
            }
        }
    }
}

/// The error of a list / dict opcode on something else; an object is named by its callable
/// (e.g. the `__main__.Net` of a pickled model).
fn not_a(op: &str, kind: &str, top: Option<&mut Py>) -> String {
    match top {
        Some(Py::Object { callable, .. }) => match &**callable {
            Py::Global(m, n) => format!("{op} on a `{m}.{n}` object, not a {kind}"),
            _ => format!("{op} on an object, not a {kind}"),
        },
        _ => format!("{op} on a non-{kind}"),
    }
}

/// `collections.OrderedDict()` (Python 3: the items follow as `SETITEMS`) or
/// `collections.OrderedDict([[k, v], ...])` (Python 2's `__reduce__`) as a [`Py::Dict`];
/// any other call is given back its `args`.
fn ordered_dict(callable: &Py, args: Py) -> Result<Py, Py> {
    if !matches!(callable, Py::Global(m, n) if m == "collections" && n == "OrderedDict") {
        return Err(args);
    }
    match args {
        Py::Tuple(a) if a.is_empty() => Ok(Py::Dict(Vec::new())),
        Py::Tuple(a)
            if a.len() == 1
                && matches!(&a[0], Py::List(items) if items.iter().all(
                    |p| matches!(p, Py::List(kv) | Py::Tuple(kv) if kv.len() == 2))) =>
        {
            let items = match a.into_iter().next() {
                Some(Py::List(items)) => items,
                _ => Vec::new(),
            };
            Ok(Py::Dict(
                items
                    .into_iter()
                    .filter_map(|p| match p {
                        Py::List(kv) | Py::Tuple(kv) => {
                            let mut kv = kv.into_iter();
                            Some((kv.next()?, kv.next()?))
                        }
                        _ => None,
                    })
                    .collect(),
            ))
        }
        other => Err(other),
    }
}

/// The little-endian two's-complement bytes of a decimal integer too wide for an `i64` (a
/// protocol-0 `LONG` line).
fn decimal_le(t: &str) -> Option<Vec<u8>> {
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // magnitude, little-endian base 256, one spare byte for the sign
    let mut mag = vec![0u8];
    for d in digits.bytes() {
        let mut carry = (d - b'0') as u32;
        for b in mag.iter_mut() {
            let v = *b as u32 * 10 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        if carry > 0 {
            mag.push(carry as u8);
        }
        if *mag.last().unwrap() != 0 {
            mag.push(0);
        }
    }
    if neg {
        // two's complement: invert and add one
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = (!*b) as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
    }
    // minimal, as LONG1 writes it: no redundant sign-extension byte
    while let [.., x, y] = mag[..] {
        if (y == 0 && x < 0x80) || (y == 0xff && x >= 0x80) {
            mag.pop();
        } else {
            break;
        }
    }
    Some(mag)
}

fn pairs(items: Vec<Py>) -> Result<Vec<(Py, Py)>, String> {
    if items.len() % 2 == 1 {
        return Err("odd number of dict items".into());
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn read_line(data: &[u8], pos: &mut usize) -> Result<String, String> {
    let rest = &data[*pos..];
    let n = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("unterminated line")?;
    *pos += n + 1;
    Ok(String::from_utf8_lossy(&rest[..n]).into_owned())
}

/// Writes the pickles that Python 2 `cPickle.dump(d, f, 2)` produces for CIFAR-style dicts
/// (tests and fixtures).
pub mod write;

#[cfg(test)]
mod tests;

//! A minimal Python pickle reader (protocols 0-5, the opcodes that `pickle.dump` / Python 2's
//! `cPickle.dump` emit for dicts of lists, strings and NumPy arrays), enough for the
//! CIFAR-100 python batches. Objects are not instantiated: `REDUCE` / `BUILD` are kept as
//! values and [`Py::ndarray_u8`] recognises NumPy's `_reconstruct` + state tuple.

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
    Global(String, String),
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
    let mut pos = 0usize;
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
            b'.' => return pop(&mut stack),
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
            0x8a => {
                let n = take(&mut pos, 1)?[0] as usize;
                let b = take(&mut pos, n)?;
                let mut v = le(b) as i64;
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Py::Int(v));
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
                    _ => Py::Int(t.parse().map_err(|_| format!("bad INT `{line}`"))?),
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
                stack.push(Py::Global(m, n));
            }
            0x93 => {
                let n = pop(&mut stack)?;
                let m = pop(&mut stack)?;
                stack.push(Py::Global(
                    m.as_key().unwrap_or("").into(),
                    n.as_key().unwrap_or("").into(),
                ));
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
                    _ => return Err("APPEND to a non-list".into()),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                match stack.last_mut() {
                    Some(Py::List(l)) => l.extend(items),
                    _ => return Err("APPENDS to a non-list".into()),
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                nest(&mut [&k, &v].into_iter())?;
                match stack.last_mut() {
                    Some(Py::Dict(d)) => d.push((k, v)),
                    _ => return Err("SETITEM on a non-dict".into()),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                nest(&mut items.iter())?;
                let kv = pairs(items)?;
                match stack.last_mut() {
                    Some(Py::Dict(d)) => d.extend(kv),
                    _ => return Err("SETITEMS on a non-dict".into()),
                }
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                nest(&mut [&callable, &args].into_iter())?;
                stack.push(Py::Object {
                    callable: Box::new(callable),
                    args: Box::new(args),
                    state: None,
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
pub mod write {
    /// A value to write.
    pub enum W<'a> {
        Bytes(&'a [u8]),
        Ints(&'a [i64]),
        Strs(&'a [&'a str]),
        /// A uint8 NumPy array of this shape.
        U8Array(&'a [usize], &'a [u8]),
    }

    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        if b.len() < 256 {
            out.push(b'U');
            out.push(b.len() as u8);
        } else {
            out.push(b'T');
            out.extend((b.len() as u32).to_le_bytes());
        }
        out.extend(b);
    }

    fn int(out: &mut Vec<u8>, v: i64) {
        if (0..256).contains(&v) {
            out.extend([b'K', v as u8]);
        } else {
            out.push(b'J');
            out.extend((v as i32).to_le_bytes());
        }
    }

    /// A protocol-2 pickle of a dict with bytes keys.
    pub fn dict(items: &[(&str, W)]) -> Vec<u8> {
        let mut o = vec![0x80, 2, b'}', b'q', 1, b'('];
        for (k, v) in items {
            bytes(&mut o, k.as_bytes());
            match v {
                W::Bytes(b) => bytes(&mut o, b),
                W::Ints(v) => {
                    o.extend([b']', b'(']);
                    v.iter().for_each(|&x| int(&mut o, x));
                    o.push(b'e');
                }
                W::Strs(v) => {
                    o.extend([b']', b'(']);
                    v.iter().for_each(|s| bytes(&mut o, s.as_bytes()));
                    o.push(b'e');
                }
                W::U8Array(shape, data) => {
                    o.extend(b"cnumpy.core.multiarray\n_reconstruct\nq\x02cnumpy\nndarray\nq\x03K\x00\x85U\x01b\x87R");
                    o.extend([b'(', b'K', 1]);
                    o.push(b'(');
                    shape.iter().for_each(|&d| int(&mut o, d as i64));
                    o.push(b't');
                    o.extend(b"cnumpy\ndtype\nq\x04U\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
                    o.push(0x89);
                    bytes(&mut o, data);
                    o.extend([b't', b'b']);
                }
            }
        }
        o.extend([b'u', b'.']);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::write::{W, dict};
    use super::*;

    #[test]
    fn round_trips_a_cifar_style_dict() {
        let data: Vec<u8> = (0..2 * 3072).map(|i| (i % 256) as u8).collect();
        let p = dict(&[
            ("batch_label", W::Bytes(b"training batch 1 of 1")),
            ("fine_labels", W::Ints(&[3, 99])),
            ("data", W::U8Array(&[2, 3072], &data)),
            ("names", W::Strs(&["apple", "zebra"])),
        ]);
        let obj = parse(&p).unwrap();
        assert_eq!(obj.get("fine_labels").unwrap().ints().unwrap(), vec![3, 99]);
        let (shape, bytes) = obj.get("data").unwrap().ndarray_u8().unwrap();
        assert_eq!(shape, vec![2, 3072]);
        assert_eq!(&bytes[..], &data[..]);
        assert_eq!(
            obj.get("names").unwrap().strings().unwrap(),
            vec!["apple", "zebra"]
        );
    }

    #[test]
    fn a_huge_length_field_is_an_error_not_an_overflow() {
        // found by `just fuzz pickle` (kept as fuzz/regressions/pickle-huge-length): BINUNICODE8
        // (0x8d) with a length of 2^64 − 1 overflowed `pos + n`
        let mut data = vec![0x8d];
        data.extend([0xff; 8]);
        data.extend([0xff; 16]);
        let e = parse(&data).unwrap_err();
        assert!(e.contains("truncated at byte 9"), "{e}");
        let crash = include_bytes!("../../../../../fuzz/regressions/pickle-huge-length");
        assert!(parse(crash).is_err());
    }

    #[test]
    fn deep_nesting_and_memo_blow_up_are_errors_not_stack_overflows() {
        // found by `just fuzz pickle`: 100 000 nested one-tuples (TUPLE1, 0x85), cloned
        // through the memo, overflowed the stack
        let mut data = vec![b'N'];
        data.extend(std::iter::repeat_n(0x85u8, 100_000));
        data.extend([b'q', 0, b'h', 0, b'.']);
        let e = parse(&data).unwrap_err();
        assert!(e.contains("nest deeper than 256"), "{e}");
        // 256 levels are fine
        let mut ok = vec![b'N'];
        ok.extend(std::iter::repeat_n(0x85u8, 255));
        ok.push(b'.');
        assert!(parse(&ok).is_ok());
        // a list doubled through the memo 60 times: 2^60 copies asked for
        let mut data = vec![b']', b'N', b'a', b'q', 0];
        for _ in 0..60 {
            data.extend([b'(', b'h', 0, b'h', 0, b'l', b'q', 0]);
        }
        data.push(b'.');
        let e = parse(&data).unwrap_err();
        assert!(e.contains("memo references expand"), "{e}");
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let p = dict(&[("fine_labels", W::Ints(&[1, 2, 3]))]);
        for cut in 0..p.len() - 1 {
            assert!(parse(&p[..cut]).is_err());
        }
    }
}

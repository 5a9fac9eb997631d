//! Writes the pickles that Python 2 `cPickle.dump(d, f, 2)` produces for CIFAR-style dicts
//! (tests and fixtures).

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

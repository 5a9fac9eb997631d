//! Writes legacy `torch.save` files (torch < 1.6) of f32 tensors, byte for byte as
//! `_legacy_save` lays them out (`torch/serialization.py:1022-1181`, see [`super::legacy`]):
//! for tests, which edit the parts ([`Legacy`]) to make broken files, and fuzz seeds. Dicts
//! are pickled as torch pickles a state_dict (`collections.OrderedDict()` + `SETITEMS`),
//! tensors as `torch._utils._rebuild_tensor_v2` of a `torch.FloatStorage` each.

/// A value to pickle.
pub enum V {
    /// An `OrderedDict` of string keys.
    Dict(Vec<(String, V)>),
    /// A contiguous f32 tensor of this shape (its own storage).
    F32(Vec<usize>, Vec<f32>),
    Int(i64),
    Str(String),
    /// `module.name(*args)`: `GLOBAL`, a tuple, `REDUCE`.
    Call(String, String, Vec<V>),
}

/// A legacy file in parts: edit them, then [`Legacy::bytes`].
pub struct Legacy {
    /// The magic number, protocol version, sys_info and object pickles.
    pub pickles: Vec<u8>,
    /// The storage key list (written sorted as strings, as torch does).
    pub keys: Vec<String>,
    /// Each storage: key, element count written before it, its bytes.
    pub storages: Vec<(String, u64, Vec<u8>)>,
}

fn unicode(o: &mut Vec<u8>, s: &str) {
    o.push(b'X');
    o.extend((s.len() as u32).to_le_bytes());
    o.extend(s.as_bytes());
}

fn int(o: &mut Vec<u8>, v: i64) {
    if (0..256).contains(&v) {
        o.extend([b'K', v as u8]);
    } else if (0..65536).contains(&v) {
        o.push(b'M');
        o.extend((v as u16).to_le_bytes());
    } else if i32::try_from(v).is_ok() {
        o.push(b'J');
        o.extend((v as i32).to_le_bytes());
    } else {
        o.extend([0x8a, 8]);
        o.extend(v.to_le_bytes());
    }
}

fn ints(o: &mut Vec<u8>, v: &[usize]) {
    o.push(b'(');
    v.iter().for_each(|&x| int(o, x as i64));
    o.push(b't');
}

fn value(o: &mut Vec<u8>, v: &V, storages: &mut Vec<(String, u64, Vec<u8>)>) {
    match v {
        V::Dict(kv) => {
            o.extend(b"ccollections\nOrderedDict\n)R");
            if !kv.is_empty() {
                o.push(b'(');
                for (k, v) in kv {
                    unicode(o, k);
                    value(o, v, storages);
                }
                o.push(b'u');
            }
        }
        V::F32(shape, vals) => {
            assert_eq!(shape.iter().product::<usize>(), vals.len());
            let key = storages.len().to_string();
            o.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            // persistent id ('storage', torch.FloatStorage, key, 'cpu', numel, None)
            o.push(b'(');
            unicode(o, "storage");
            o.extend(b"ctorch\nFloatStorage\n");
            unicode(o, &key);
            unicode(o, "cpu");
            int(o, vals.len() as i64);
            o.extend([b'N', b't', b'Q']);
            int(o, 0);
            ints(o, shape);
            let mut stride = vec![1usize; shape.len()];
            for d in (0..shape.len().saturating_sub(1)).rev() {
                stride[d] = stride[d + 1] * shape[d + 1];
            }
            ints(o, &stride);
            o.push(0x89);
            o.extend(b"ccollections\nOrderedDict\n)R");
            o.extend([b't', b'R']);
            let bytes = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
            storages.push((key, vals.len() as u64, bytes));
        }
        V::Int(i) => int(o, *i),
        V::Str(s) => unicode(o, s),
        V::Call(m, n, args) => {
            o.extend(format!("c{m}\n{n}\n(").as_bytes());
            args.iter().for_each(|a| value(o, a, storages));
            o.extend([b't', b'R']);
        }
    }
}

impl Legacy {
    /// `torch.save(obj, f, _use_new_zipfile_serialization=False)` of `obj`, in parts.
    pub fn new(obj: &V) -> Legacy {
        // magic number (LONG1 of 10 bytes), protocol version 1001, sys_info
        let mut o = vec![0x80, 2, 0x8a, 10];
        o.extend([
            0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
        ]);
        o.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
        o.extend([0x80, 2, b'}', b'(']);
        unicode(&mut o, "protocol_version");
        int(&mut o, 1001);
        unicode(&mut o, "little_endian");
        o.push(0x88);
        unicode(&mut o, "type_sizes");
        o.extend([b'}', b'(']);
        for (k, v) in [("short", 2), ("int", 4), ("long", 8)] {
            unicode(&mut o, k);
            int(&mut o, v);
        }
        o.extend([b'u', b'u', b'.']);
        let mut storages = Vec::new();
        o.extend([0x80, 2]);
        value(&mut o, obj, &mut storages);
        o.push(b'.');
        let mut keys: Vec<String> = storages.iter().map(|s| s.0.clone()).collect();
        keys.sort();
        Legacy {
            pickles: o,
            keys,
            storages,
        }
    }

    /// The file: the pickles, the key list, then each listed storage that exists, in list
    /// order.
    pub fn bytes(&self) -> Vec<u8> {
        let mut o = self.pickles.clone();
        o.extend([0x80, 2, b']']);
        if !self.keys.is_empty() {
            o.push(b'(');
            self.keys.iter().for_each(|k| unicode(&mut o, k));
            o.push(b'e');
        }
        o.push(b'.');
        for k in &self.keys {
            if let Some((_, count, bytes)) = self.storages.iter().find(|s| &s.0 == k) {
                o.extend(count.to_le_bytes());
                o.extend(bytes);
            }
        }
        o
    }
}

/// The bytes of a legacy `torch.save` file of `obj`.
pub fn legacy(obj: &V) -> Vec<u8> {
    Legacy::new(obj).bytes()
}

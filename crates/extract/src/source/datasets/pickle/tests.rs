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
    let crash = include_bytes!("../../../../../../fuzz/regressions/pickle-huge-length");
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

#[test]
fn parse_at_reads_one_pickle_of_a_stream_and_says_where_it_ended() {
    // what a legacy torch.save file starts with: the magic number (LONG1 of 10 bytes), then
    // the protocol version 1001 (BININT2), each its own protocol-2 pickle
    let mut data = vec![0x80, 2, 0x8a, 10];
    data.extend([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    data.push(b'.');
    data.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
    let first = parse_at(&data, 0).unwrap();
    assert_eq!(first.end, 15);
    assert_eq!(
        first.value,
        Py::BigInt(vec![
            0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19
        ])
    );
    let second = parse_at(&data, first.end).unwrap();
    assert_eq!((second.value, second.end), (Py::Int(1001), data.len()));
    // a start past the end, or a stream cut in the second pickle, is an error naming the offset
    assert!(
        parse_at(&data, 100)
            .unwrap_err()
            .contains("truncated at byte")
    );
    let e = parse_at(&data[..18], 15).unwrap_err();
    assert!(e.contains("truncated at byte 18"), "{e}");
}

#[test]
fn a_protocol_0_long_too_wide_for_i64_is_a_big_int() {
    // 0x1950a86a20f9469cfc6c written as protocol 0/1 writes it
    let p = parse(b"L119547037146038801333356L\n.").unwrap();
    let Py::BigInt(b) = p else { panic!("{p:?}") };
    assert_eq!(
        b,
        [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
    );
    assert_eq!(decimal_le("-1"), Some(vec![0xff]));
    assert_eq!(decimal_le("-256"), Some(vec![0x00, 0xff]));
    assert_eq!(parse(b"L-9223372036854775809\n.").unwrap(), {
        // −2^63 − 1: 0x7fff_ffff_ffff_ffff inverted, sign-extended
        let mut v = vec![0xff; 8];
        v[7] = 0x7f;
        v.push(0xff);
        Py::BigInt(v)
    });
    assert!(parse(b"L12x3\n.").unwrap_err().contains("bad INT"));
}

#[test]
fn persistent_ids_are_kept_as_values() {
    // BINPERSID: ('storage', torch.FloatStorage, '0', 'cpu', 4)
    let p = parse(
        b"\x80\x02(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ.",
    )
    .unwrap();
    let Py::Persistent(pid) = &p else {
        panic!("{p:?}")
    };
    let Py::Tuple(t) = &**pid else {
        panic!("{pid:?}")
    };
    assert_eq!(t[0], Py::Str("storage".into()));
    assert_eq!(t[1], Py::Global("torch".into(), "FloatStorage".into()));
    assert_eq!(t[4], Py::Int(4));
    // PERSID (protocol 0): a line of text
    assert_eq!(
        parse(b"Pkey 7\n.").unwrap(),
        Py::Persistent(Box::new(Py::Str("key 7".into())))
    );
    // BINPERSID on an empty stack
    assert!(parse(b"Q.").is_err());
}

#[test]
fn ordered_dicts_are_dicts_and_every_global_is_listed() {
    // Python 3 torch.save: OrderedDict() then SETITEMS, then BUILD with its `_metadata`
    let p = parse_at(
        b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00bK\x02u}b.",
        0,
    )
    .unwrap();
    assert_eq!(p.value.get("a"), Some(&Py::Int(1)));
    assert_eq!(p.value.get("b"), Some(&Py::Int(2)));
    assert_eq!(
        p.globals,
        vec![("collections".into(), "OrderedDict".into())]
    );
    // Python 2: OrderedDict([['a', 1]])
    let p = parse(b"\x80\x02ccollections\nOrderedDict\n]](U\x01aK\x01ea\x85R.").unwrap();
    assert_eq!(p.get("a"), Some(&Py::Int(1)));
    // any other call stays a call; a global that is only a dict key is listed all the same
    let p = parse_at(
        b"\x80\x02}(X\x01\x00\x00\x00kcposix\nsystem\nX\x02\x00\x00\x00ls\x85Rucbuiltins\neval\n0.",
        0,
    );
    // POP (`0`) is not an opcode this reader knows: an error, not a skipped global
    assert!(p.unwrap_err().contains("unsupported pickle opcode 0x30"));
    let p = parse_at(
        b"\x80\x02}(X\x01\x00\x00\x00kcposix\nsystem\nX\x02\x00\x00\x00ls\x85Ru.",
        0,
    )
    .unwrap();
    assert!(matches!(
        p.value.get("k"),
        Some(Py::Object { callable, .. }) if **callable == Py::Global("posix".into(), "system".into())
    ));
    assert_eq!(p.globals, vec![("posix".into(), "system".into())]);
}

#[test]
fn items_set_on_an_object_name_its_class() {
    let e = parse(b"\x80\x02c__main__\nNet\n)R(X\x01\x00\x00\x00aK\x01u.").unwrap_err();
    assert_eq!(e, "SETITEMS on a `__main__.Net` object, not a dict");
    assert_eq!(parse(b"K\x01K\x02a.").unwrap_err(), "APPEND on a non-list");
}

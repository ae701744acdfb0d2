use super::*;

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn fifo_bounded_and_persistent() {
    let dir = tempfile::tempdir().unwrap();
    let each = (format::HEADER_LEN + 40) as u64;
    let spool = Spool::open(dir.path(), 2 * each + 10).unwrap();
    assert!(spool.oldest().is_none());
    let a = spool.write(&[b'a'; 40], 2).unwrap();
    let b = spool.write(&[b'b'; 40], 3).unwrap();
    assert!(matches!(
        spool.write(&[b'c'; 40], 1),
        Err(SpoolError::Full { used, .. }) if used == 2 * each
    ));
    assert_eq!(spool.oldest(), Some(a));
    assert_eq!(spool.read(&a).unwrap(), vec![b'a'; 40]);
    drop(spool);

    let spool = Spool::open(dir.path(), 2 * each + 10).unwrap();
    assert_eq!(spool.len(), 2);
    assert_eq!(spool.used_bytes(), 2 * each);
    assert_eq!(spool.oldest(), Some(a));
    spool.remove(&a).unwrap();
    assert_eq!(spool.oldest(), Some(b));
    let c = spool.write(&[b'c'; 40], 1).unwrap();
    assert!(c.seq > b.seq);
    assert_eq!(spool.quarantined_at_open(), Quarantined::default());
}

#[test]
fn claims_hand_each_batch_to_one_replayer() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let entries: Vec<Entry> = (0..5)
        .map(|i| spool.write(&[b'x'; 8], i).unwrap())
        .collect();
    let first = spool.claim_oldest(2);
    assert_eq!(first, entries[..2].to_vec());
    let second = spool.claim_oldest(2);
    assert_eq!(second, entries[2..4].to_vec());
    spool.release(&first[1]);
    spool.remove(&first[0]).unwrap();
    assert_eq!(spool.claim_oldest(9), vec![entries[1], entries[4]]);
}

#[test]
fn damaged_and_cut_short_files_are_quarantined_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{"TraceSegmentDocuments":["{}","{}"]}"#;
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let good = spool.write(body, 2).unwrap();
    let flipped = spool.write(body, 2).unwrap();
    let cut = spool.write(body, 2).unwrap();
    drop(spool);
    let path = |e: &Entry| dir.path().join(Spool::name(e));
    let mut bytes = std::fs::read(path(&flipped)).unwrap();
    bytes[format::HEADER_LEN + 3] ^= 0x20;
    std::fs::write(path(&flipped), bytes).unwrap();
    let bytes = std::fs::read(path(&cut)).unwrap();
    std::fs::write(path(&cut), &bytes[..bytes.len() / 2]).unwrap();
    // A crash between create and rename leaves a temporary file.
    std::fs::write(dir.path().join("00000000000000000009-4.tmp"), b"{\"Trace").unwrap();
    // A batch spooled by the first format is still replayed.
    std::fs::write(dir.path().join("00000000000000000007-2.json"), body).unwrap();

    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        spool.quarantined_at_open(),
        Quarantined {
            files: 1,
            documents: 4,
            bytes: 7
        }
    );
    assert_eq!(spool.len(), 4);
    let mut moved = Quarantined::default();
    let mut replayed = Vec::new();
    for entry in spool.claim_oldest(10) {
        match spool.read(&entry) {
            Ok(read) => {
                assert_eq!(read, body.to_vec());
                replayed.push(entry.seq);
                spool.remove(&entry).unwrap();
            }
            Err(SpoolError::Corrupt { reason, .. }) => {
                assert!(
                    matches!(
                        reason,
                        Corruption::Checksum { .. } | Corruption::Truncated { .. }
                    ),
                    "{reason}"
                );
                let q = spool.quarantine(&entry).unwrap();
                moved.files += q.files;
                moved.documents += q.documents;
                moved.bytes += q.bytes;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(replayed, vec![good.seq, 7]);
    assert_eq!(moved.files, 2);
    assert_eq!(moved.documents, 4);
    assert!(spool.is_empty());
    assert_eq!(spool.used_bytes(), 0);
    assert_eq!(files_in(dir.path()), vec![QUARANTINE_DIR.to_owned()]);
    assert_eq!(
        files_in(&dir.path().join(QUARANTINE_DIR)),
        vec![
            Spool::name(&flipped),
            Spool::name(&cut),
            "00000000000000000009-4.tmp".to_owned()
        ]
    );
    // New batches continue after every sequence number seen, quarantined or not.
    assert!(spool.write(body, 2).unwrap().seq > 7);
}

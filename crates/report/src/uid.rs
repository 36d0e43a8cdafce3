//! DICOM UIDs for new instances: `2.25.<UUID as a decimal integer>` (DICOM PS3.5 B.2), so no
//! registered organisation root is needed and collisions are as unlikely as for random UUIDs.

/// A fresh UID under the `2.25` root (at most 44 characters).
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        for u in [&a, &b] {
            assert!(u.len() <= 64);
            assert!(u.starts_with("2.25."));
            let tail = &u[5..];
            assert!(tail.chars().all(|c| c.is_ascii_digit()));
            // No leading zero in a UID component (PS3.5 9.1).
            assert!(!tail.starts_with('0') || tail == "0");
        }
    }
}

//! Long-tailed subsets by the exponential profile, the LOS / LTWB rule: for class c keep the
//! first `n_c = int(img_max * (1/IR)^(c/(K-1)))` images of that class in file order
//! (deterministic, no RNG); the subset is class-major (all of class 0, then class 1, ...),
//! as `np.where(targets == c)[0][:n_c]` concatenated over c.

use bank::Fnv;

/// The kept row indices, class-major, or the first class that has too few images.
pub fn first_n_per_class(
    labels: &[u32],
    counts: &[usize],
) -> Result<Vec<usize>, (usize, usize, usize)> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); counts.len()];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(v) = by_class
            .get_mut(l as usize)
            .filter(|v| v.len() < counts[l as usize])
        {
            v.push(i);
        }
    }
    for (c, v) in by_class.iter().enumerate() {
        if v.len() < counts[c] {
            return Err((c, v.len(), counts[c]));
        }
    }
    Ok(by_class.concat())
}

/// FNV-1a 64 over the indices (u64 little-endian): identifies the subset in meta.json.
pub fn index_checksum(idx: &[usize]) -> String {
    let mut h = Fnv::default();
    for &i in idx {
        h.write(&(i as u64).to_le_bytes());
    }
    format!("{:016x}", h.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_images_of_each_class_in_file_order() {
        let labels = [1, 0, 1, 0, 1, 0, 2];
        assert_eq!(
            first_n_per_class(&labels, &[2, 1, 1]).unwrap(),
            vec![1, 3, 0, 6]
        );
    }

    #[test]
    fn too_few_images_names_the_class() {
        assert_eq!(first_n_per_class(&[0, 0, 1], &[1, 2]), Err((1, 1, 2)));
    }

    #[test]
    fn fashion_mnist_lt_sizes_match_the_reference() {
        let total = |ir| {
            bank::profile::exponential_counts(6000.0, 10, ir)
                .iter()
                .sum::<usize>()
        };
        assert_eq!(
            bank::profile::exponential_counts(6000.0, 10, 100.0),
            vec![6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
        );
        assert_eq!(
            (total(100.0), total(10.0), total(50.0)),
            (14_886, 24_516, 16_796)
        );
    }
}

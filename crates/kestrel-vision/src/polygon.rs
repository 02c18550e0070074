//! Outlines of segmented regions: the convex hull of a region's pixels, grown outward by the
//! DB "unclip" distance as PaddleOCR grows its text polygons.

/// Convex hull (Andrew's monotone chain), counter-clockwise in x-right/y-up terms (clockwise
/// on screen); collinear points dropped. `points` is sorted in place.
pub fn convex_hull(points: &mut [(f32, f32)]) -> Vec<(f32, f32)> {
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    if points.len() < 3 {
        return points.to_vec();
    }
    let cross = |o: (f32, f32), a: (f32, f32), b: (f32, f32)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let chain = |points: &mut dyn Iterator<Item = &(f32, f32)>| {
        let mut chain: Vec<(f32, f32)> = Vec::new();
        for &p in points {
            while chain.len() >= 2 && cross(chain[chain.len() - 2], chain[chain.len() - 1], p) <= 0.0 {
                chain.pop();
            }
            chain.push(p);
        }
        chain.pop(); // the last point starts the other chain
        chain
    };
    let mut hull = chain(&mut points.iter());
    hull.extend(chain(&mut points.iter().rev()));
    hull
}

/// Moves each edge of a convex polygon (as [`convex_hull`] orders it) outward by `distance`;
/// corners are mitred, a sharp corner's miter capped at twice the distance.
pub fn grow(polygon: &mut [(f32, f32)], distance: f32) {
    let n = polygon.len();
    if n < 3 || distance == 0.0 {
        return;
    }
    let normal = |a: (f32, f32), b: (f32, f32)| {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy).max(f32::MIN_POSITIVE);
        (dy / len, -dx / len)
    };
    let original = polygon.to_vec();
    for i in 0..n {
        let (prev, here, next) = (original[(i + n - 1) % n], original[i], original[(i + 1) % n]);
        let (n1, n2) = (normal(prev, here), normal(here, next));
        let (mx, my) = (n1.0 + n2.0, n1.1 + n2.1);
        let len = mx.hypot(my).max(f32::MIN_POSITIVE);
        let (mx, my) = (mx / len, my / len);
        // Along the bisector, the edges move by `distance` when the vertex moves by distance / cos.
        let cos = (mx * n1.0 + my * n1.1).max(0.5);
        polygon[i] = (here.0 + mx * distance / cos, here.1 + my * distance / cos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_of_a_staircase_and_its_growth() {
        // The corners of three pixels in a diagonal staircase (x, y): (0,0), (1,1), (2,2).
        let mut pts: Vec<(f32, f32)> = (0..3)
            .flat_map(|i| {
                let i = i as f32;
                [(i, i), (i + 1.0, i), (i, i + 1.0), (i + 1.0, i + 1.0)]
            })
            .collect();
        let hull = convex_hull(&mut pts);
        assert_eq!(hull, vec![(0.0, 0.0), (1.0, 0.0), (3.0, 2.0), (3.0, 3.0), (2.0, 3.0), (0.0, 1.0)]);
        // A unit square grown by 1 is the 3x3 square around it.
        let mut square = convex_hull(&mut [(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.0)]);
        assert_eq!(square.len(), 4, "the collinear point is dropped: {square:?}");
        grow(&mut square, 1.0);
        for (p, want) in square.iter().zip([(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)]) {
            assert!((p.0 - want.0).abs() < 1e-5 && (p.1 - want.1).abs() < 1e-5, "{square:?}");
        }
        // A needle's sharp corners are capped at twice the distance.
        let mut needle = vec![(0.0, 0.0), (100.0, 0.0), (0.0, 1.0)];
        grow(&mut needle, 1.0);
        assert!(needle.iter().all(|p| p.0 >= -2.01 && p.0 <= 102.01 && p.1 >= -2.01 && p.1 <= 3.01), "{needle:?}");
    }
}

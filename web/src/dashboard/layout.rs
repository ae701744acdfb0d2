//! Layered left-to-right layout of a directed graph (a small Sugiyama): cycles broken by a
//! depth-first search, layers by longest path from the sources (callers before callees),
//! order within layers by barycenter sweeps to cut edge crossings, then coordinates.
//! Pure and deterministic, so the same graph always draws the same way.

/// Where each node goes, in layout units (pixels before scaling).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Center of each node, in input order.
    pub positions: Vec<(f64, f64)>,
    /// Layer of each node (0 = leftmost).
    pub layers: Vec<usize>,
    /// Total width.
    pub width: f64,
    /// Total height.
    pub height: f64,
}

/// Spacing of the layout.
#[derive(Debug, Clone, Copy)]
pub struct Spacing {
    /// Distance between layers (columns).
    pub column: f64,
    /// Distance between nodes of one layer (rows).
    pub row: f64,
    /// Margin around everything.
    pub margin: f64,
}

/// Lays out `n` nodes joined by `edges` (`(from, to)` indexes; self-loops and duplicates are
/// allowed and ignored).
pub fn layered(n: usize, edges: &[(usize, usize)], spacing: Spacing) -> Layout {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for &(a, b) in edges {
        if a < n && b < n && a != b && !out[a].contains(&b) {
            out[a].push(b);
            indegree[b] += 1;
        }
    }
    // Break cycles: drop edges that go back to a node on the DFS stack.
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut starts: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    starts.extend(0..n);
    for s in starts {
        if state[s] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(s, 0)];
        state[s] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = out[v].get(*next) {
                *next += 1;
                match state[w] {
                    0 => {
                        forward[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    2 => forward[v].push(w),
                    _ => {} // back edge: ignored for layering
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    // Longest path layering over the acyclic edges (topological order by Kahn).
    let mut indeg = vec![0usize; n];
    for list in &forward {
        for &w in list {
            indeg[w] += 1;
        }
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut layer = vec![0usize; n];
    let mut head = 0;
    while head < queue.len() {
        let v = queue[head];
        head += 1;
        for &w in &forward[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indeg[w] -= 1;
            if indeg[w] == 0 {
                queue.push(w);
            }
        }
    }
    let layer_count = layer.iter().copied().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for v in 0..n {
        rows[layer[v]].push(v);
    }
    // Neighbours in adjacent layers for the barycenter sweeps (long edges pull too).
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (v, list) in forward.iter().enumerate() {
        for &w in list {
            preds[w].push(v);
        }
    }
    let mut pos = vec![0f64; n];
    let renumber = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    renumber(&rows, &mut pos);
    for sweep in 0..8 {
        let down = sweep % 2 == 0;
        let order: Vec<usize> = if down {
            (1..layer_count).collect()
        } else {
            (0..layer_count.saturating_sub(1)).rev().collect()
        };
        for l in order {
            let mut keyed: Vec<(f64, f64, usize)> = rows[l]
                .iter()
                .map(|&v| {
                    let nb = if down { &preds[v] } else { &forward[v] };
                    let key = if nb.is_empty() {
                        pos[v]
                    } else {
                        nb.iter().map(|&u| pos[u]).sum::<f64>() / nb.len() as f64
                    };
                    (key, pos[v], v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            rows[l] = keyed.into_iter().map(|k| k.2).collect();
            for (i, &v) in rows[l].iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    }
    let tallest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let height = spacing.margin * 2.0 + tallest.saturating_sub(1) as f64 * spacing.row;
    let width = spacing.margin * 2.0 + layer_count.saturating_sub(1) as f64 * spacing.column;
    let mut positions = vec![(0.0, 0.0); n];
    for (l, row) in rows.iter().enumerate() {
        let offset = (tallest - row.len()) as f64 * spacing.row / 2.0;
        for (i, &v) in row.iter().enumerate() {
            positions[v] = (
                spacing.margin + l as f64 * spacing.column,
                spacing.margin + offset + i as f64 * spacing.row,
            );
        }
    }
    Layout {
        positions,
        layers: layer,
        width,
        height,
    }
}

/// Number of crossings between edges joining adjacent layers (for tests and tuning).
pub fn crossings(layout: &Layout, edges: &[(usize, usize)]) -> usize {
    let spans: Vec<(f64, f64, usize)> = edges
        .iter()
        .filter(|(a, b)| layout.layers[*b] == layout.layers[*a] + 1)
        .map(|&(a, b)| {
            (
                layout.positions[a].1,
                layout.positions[b].1,
                layout.layers[a],
            )
        })
        .collect();
    let mut count = 0;
    for (i, x) in spans.iter().enumerate() {
        for y in &spans[i + 1..] {
            if x.2 == y.2 && (x.0 - y.0) * (x.1 - y.1) < 0.0 {
                count += 1;
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACING: Spacing = Spacing {
        column: 200.0,
        row: 100.0,
        margin: 50.0,
    };

    #[test]
    fn callers_come_before_callees() {
        let edges = [(0, 1), (1, 2), (1, 3), (3, 4), (0, 4)];
        let l = layered(5, &edges, SPACING);
        for (a, b) in edges {
            assert!(l.positions[a].0 < l.positions[b].0, "{a}->{b}: {l:?}");
        }
        assert_eq!(l.layers, [0, 1, 2, 2, 3]);
    }

    #[test]
    fn cycles_do_not_loop_forever_and_every_node_is_placed() {
        let edges = [(0, 1), (1, 2), (2, 1), (2, 0), (3, 3)];
        let l = layered(4, &edges, SPACING);
        assert_eq!(l.positions.len(), 4);
        let mut seen: Vec<(i64, i64)> = l
            .positions
            .iter()
            .map(|p| (p.0 as i64, p.1 as i64))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 4, "two nodes share a position: {l:?}");
    }

    #[test]
    fn barycenter_removes_the_obvious_crossing() {
        // 0 -> 3, 1 -> 2 would cross if kept in input order.
        let edges = [(4, 0), (4, 1), (0, 3), (1, 2)];
        let l = layered(5, &edges, SPACING);
        assert_eq!(crossings(&l, &edges), 0, "{l:?}");
    }
}

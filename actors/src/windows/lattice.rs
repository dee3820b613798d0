//! Window assignment: sliding windows aligned to the Unix epoch (as Spark's `window()` does),
//! split into panes of `gcd(size, slide)` so each event updates exactly one pane and a window
//! is the union of its panes.

use crate::events::Micros;

/// Window geometry in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windowing {
    pub size: Micros,
    pub slide: Micros,
    pane: Micros,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowingError {
    #[error("window size must be positive (got {0} µs)")]
    Size(Micros),
    #[error(
        "window slide must be positive and at most the size (got slide {slide} µs, size {size} µs)"
    )]
    Slide { size: Micros, slide: Micros },
}

fn gcd(a: Micros, b: Micros) -> Micros {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Windowing {
    pub fn new(size: Micros, slide: Micros) -> Result<Self, WindowingError> {
        if size <= 0 {
            return Err(WindowingError::Size(size));
        }
        if slide <= 0 || slide > size {
            return Err(WindowingError::Slide { size, slide });
        }
        Ok(Windowing {
            size,
            slide,
            pane: gcd(size, slide),
        })
    }

    pub fn pane_width(&self) -> Micros {
        self.pane
    }

    /// Start of the pane holding `t`.
    pub fn pane_of(&self, t: Micros) -> Micros {
        t.div_euclid(self.pane) * self.pane
    }

    /// Start of the earliest window containing `t`.
    pub fn first_start(&self, t: Micros) -> Micros {
        // Smallest multiple of slide strictly greater than t - size.
        (t - self.size).div_euclid(self.slide) * self.slide + self.slide
    }

    /// Start of the latest window containing `t`.
    pub fn last_start(&self, t: Micros) -> Micros {
        t.div_euclid(self.slide) * self.slide
    }

    /// Every window start whose window contains `t`, earliest first.
    pub fn starts_containing(&self, t: Micros) -> impl Iterator<Item = Micros> {
        let (first, last, slide) = (self.first_start(t), self.last_start(t), self.slide);
        (0..)
            .map(move |k| first + k * slide)
            .take_while(move |s| *s <= last)
    }

    /// End of the last window that still needs the pane starting at `pane`: once the emitted
    /// boundary reaches it, the pane can be dropped.
    pub fn pane_needed_until(&self, pane: Micros) -> Micros {
        // The pane's last instant is pane + width - 1; the last window containing it.
        self.last_start(pane + self.pane - 1) + self.size
    }

    /// The largest window end on the lattice that is `<= t`.
    pub fn end_at_or_before(&self, t: Micros) -> Micros {
        (t - self.size).div_euclid(self.slide) * self.slide + self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    #[test]
    fn seed_windows_contain_each_instant_twice_or_five_times() {
        let w = Windowing::new(60 * S, 30 * S).unwrap();
        let starts: Vec<_> = w.starts_containing(75 * S).collect();
        assert_eq!(starts, vec![30 * S, 60 * S]);
        // On a boundary the instant belongs to the window starting there, not the one ending.
        let starts: Vec<_> = w.starts_containing(60 * S).collect();
        assert_eq!(starts, vec![30 * S, 60 * S]);
        let u = Windowing::new(300 * S, 60 * S).unwrap();
        assert_eq!(u.starts_containing(61 * S).count(), 5);
        assert_eq!(u.pane_width(), 60 * S);
    }

    #[test]
    fn negative_times_floor_not_truncate() {
        let w = Windowing::new(60 * S, 30 * S).unwrap();
        let starts: Vec<_> = w.starts_containing(-S).collect();
        assert_eq!(starts, vec![-60 * S, -30 * S]);
        assert_eq!(w.pane_of(-S), -30 * S);
    }

    #[test]
    fn uneven_geometry_uses_gcd_panes() {
        let w = Windowing::new(90 * S, 60 * S).unwrap();
        assert_eq!(w.pane_width(), 30 * S);
        assert_eq!(
            w.starts_containing(100 * S).collect::<Vec<_>>(),
            vec![60 * S]
        );
        assert_eq!(
            w.starts_containing(70 * S).collect::<Vec<_>>(),
            vec![0, 60 * S]
        );
        assert_eq!(w.pane_needed_until(60 * S), 150 * S);
        assert_eq!(w.end_at_or_before(149 * S), 90 * S);
        assert_eq!(w.end_at_or_before(150 * S), 150 * S);
    }

    #[test]
    fn bad_geometry_is_rejected() {
        assert!(Windowing::new(0, 1).is_err());
        assert!(Windowing::new(10, 20).is_err());
        assert!(Windowing::new(10, 0).is_err());
    }
}

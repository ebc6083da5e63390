//! The `Range` header of a download (RFC 9110 §14): one byte range, `bytes=a-b`, `bytes=a-`
//! or `bytes=-n`, resolved against the file's size.
//!
//! Plain logic, apart from HTTP, so every form is tested without a server.

/// What part of a file of some size a download sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// The whole file (no `Range`, or several ranges, which may be ignored): a 200.
    Whole,
    /// Bytes `start..=end` of the file: a 206.
    Part {
        /// First byte sent.
        start: u64,
        /// Last byte sent (inclusive, as `Content-Range` counts).
        end: u64,
    },
    /// A malformed range, or one that starts past the end of the file: a 416.
    Unsatisfiable,
}

impl Requested {
    /// The part of a file of `size` bytes that `header` (the `Range` value, if any) asks for.
    pub fn parse(header: Option<&str>, size: u64) -> Requested {
        let Some(header) = header else {
            return Requested::Whole;
        };
        let Some(spec) = header.trim().strip_prefix("bytes=") else {
            return Requested::Unsatisfiable;
        };
        if spec.contains(',') {
            // Several ranges would need a multipart reply; RFC 9110 lets a server send the
            // whole file instead.
            return Requested::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Requested::Unsatisfiable;
        };
        let number = |text: &str| text.trim().parse::<u64>().ok();
        match (first.trim().is_empty(), last.trim().is_empty()) {
            // `-n`: the last n bytes.
            (true, false) => match number(last) {
                Some(n) if n > 0 && size > 0 => Requested::Part {
                    start: size.saturating_sub(n),
                    end: size - 1,
                },
                _ => Requested::Unsatisfiable,
            },
            // `a-`: from a to the end.
            (false, true) => match number(first) {
                Some(start) if start < size => Requested::Part {
                    start,
                    end: size - 1,
                },
                _ => Requested::Unsatisfiable,
            },
            // `a-b`: a to b, b clamped to the end.
            (false, false) => match (number(first), number(last)) {
                (Some(start), Some(end)) if start <= end && start < size => Requested::Part {
                    start,
                    end: end.min(size - 1),
                },
                _ => Requested::Unsatisfiable,
            },
            (true, true) => Requested::Unsatisfiable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> Requested {
        Requested::Part { start, end }
    }

    #[test]
    fn every_single_range_form_resolves_against_the_size() {
        assert_eq!(Requested::parse(None, 100), Requested::Whole);
        assert_eq!(Requested::parse(Some("bytes=0-9"), 100), part(0, 9));
        assert_eq!(Requested::parse(Some("bytes=90-200"), 100), part(90, 99));
        assert_eq!(Requested::parse(Some("bytes=50-"), 100), part(50, 99));
        assert_eq!(Requested::parse(Some("bytes=-10"), 100), part(90, 99));
        assert_eq!(Requested::parse(Some("bytes=-500"), 100), part(0, 99));
        assert_eq!(
            Requested::parse(Some("bytes=0-0,5-6"), 100),
            Requested::Whole
        );
    }

    #[test]
    fn malformed_or_past_the_end_ranges_are_unsatisfiable() {
        for header in [
            "bytes=100-",
            "bytes=100-200",
            "bytes=5-2",
            "bytes=-0",
            "bytes=-",
            "bytes=x-3",
            "items=0-3",
            "bytes=3",
        ] {
            assert_eq!(
                Requested::parse(Some(header), 100),
                Requested::Unsatisfiable,
                "{header}"
            );
        }
        assert_eq!(
            Requested::parse(Some("bytes=0-"), 0),
            Requested::Unsatisfiable
        );
        assert_eq!(
            Requested::parse(Some("bytes=-1"), 0),
            Requested::Unsatisfiable
        );
    }
}

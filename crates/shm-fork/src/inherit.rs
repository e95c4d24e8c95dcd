//! Values that change owner across a fork (docs/architecture.md, rule 9).
//!
//! After `fork` both processes hold a copy of every value. For plain data that is harmless;
//! for a channel endpoint it is not: exactly one process may own it, and the other copy must
//! neither count as a peer nor disconnect anyone when dropped. [`Inherit`] is the protocol
//! [`fork_with`](crate::fork_with) runs on the values it moves into a child:
//!
//! 1. parent, right after the fork: [`Inherit::hand_over`] with the child's identity;
//! 2. parent: drops its copy, which the hand-over has made inert;
//! 3. child, once the parent has finished step 1: [`Inherit::adopt`], then the closure runs
//!    with the values.

use std::error::Error;

use shm_core::liveness::ProcessIdentity;

/// A failed [`Inherit::hand_over`] or [`Inherit::adopt`], wrapping the value's own error.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InheritError(Box<dyn Error + Send + Sync + 'static>);

impl InheritError {
    /// Wraps any error (or message: `InheritError::new("endpoint already adopted")`).
    pub fn new(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> InheritError {
        InheritError(error.into())
    }

    /// The wrapped error.
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync + 'static> {
        self.0
    }
}

/// A value that can be moved into a forked child.
///
/// Implement it for anything whose ownership is recorded outside the process (in shared
/// memory, say): channel endpoints, leases, registrations. Plain data needs nothing and can
/// travel as `()` does, captured by the closure.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use shm_ipc::core::liveness::ProcessIdentity;
/// use shm_ipc::fork::{Inherit, InheritError};
///
/// /// Remembers who owns it.
/// struct Token { owner: Cell<i32> }
///
/// impl Inherit for Token {
///     fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
///         self.owner.set(child.pid());
///         Ok(())
///     }
///     fn adopt(&self) -> Result<(), InheritError> {
///         if self.owner.get() == std::process::id() as i32 {
///             Ok(())
///         } else {
///             Err(InheritError::new("token adopted by a process it was not handed to"))
///         }
///     }
/// }
///
/// let token = Token { owner: Cell::new(0) };
/// let me = ProcessIdentity::current().unwrap();
/// token.hand_over(me).unwrap();
/// assert!(token.adopt().is_ok());
/// ```
pub trait Inherit {
    /// Parent side, right after the fork and before the parent drops its copy: record that
    /// `child` owns this value from now on, so that the parent's copy becomes inert.
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError>;

    /// Child side, before the closure runs (and after the parent's `hand_over` returned):
    /// take ownership in the calling process.
    fn adopt(&self) -> Result<(), InheritError>;
}

impl Inherit for () {
    fn hand_over(&self, _child: ProcessIdentity) -> Result<(), InheritError> {
        Ok(())
    }

    fn adopt(&self) -> Result<(), InheritError> {
        Ok(())
    }
}

impl<T: Inherit + ?Sized> Inherit for Box<T> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        (**self).hand_over(child)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        (**self).adopt()
    }
}

impl<T: Inherit> Inherit for Option<T> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        self.as_ref().map_or(Ok(()), |value| value.hand_over(child))
    }

    fn adopt(&self) -> Result<(), InheritError> {
        self.as_ref().map_or(Ok(()), Inherit::adopt)
    }
}

impl<T: Inherit> Inherit for [T] {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        self.iter().try_for_each(|value| value.hand_over(child))
    }

    fn adopt(&self) -> Result<(), InheritError> {
        self.iter().try_for_each(Inherit::adopt)
    }
}

impl<T: Inherit> Inherit for Vec<T> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        self.as_slice().hand_over(child)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        self.as_slice().adopt()
    }
}

impl<T: Inherit, const N: usize> Inherit for [T; N] {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        self.as_slice().hand_over(child)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        self.as_slice().adopt()
    }
}

/// `Inherit` for a tuple: each element in order, stopping at the first error.
macro_rules! inherit_tuple {
    ($($name:ident),+) => {
        impl<$($name: Inherit),+> Inherit for ($($name,)+) {
            fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.hand_over(child)?;)+
                Ok(())
            }

            fn adopt(&self) -> Result<(), InheritError> {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.adopt()?;)+
                Ok(())
            }
        }
    };
}

inherit_tuple!(A);
inherit_tuple!(A, B);
inherit_tuple!(A, B, C);
inherit_tuple!(A, B, C, D);
inherit_tuple!(A, B, C, D, E);
inherit_tuple!(A, B, C, D, E, F);

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Logs every call, and fails `adopt` if told to.
    struct Probe<'a> {
        name: &'static str,
        log: &'a RefCell<Vec<String>>,
        fail_adopt: bool,
    }

    impl Inherit for Probe<'_> {
        fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
            self.log
                .borrow_mut()
                .push(format!("hand_over {} {}", self.name, child.pid()));
            Ok(())
        }

        fn adopt(&self) -> Result<(), InheritError> {
            self.log.borrow_mut().push(format!("adopt {}", self.name));
            if self.fail_adopt {
                Err(InheritError::new(format!("{} refused", self.name)))
            } else {
                Ok(())
            }
        }
    }

    fn probe<'a>(name: &'static str, log: &'a RefCell<Vec<String>>) -> Probe<'a> {
        Probe {
            name,
            log,
            fail_adopt: false,
        }
    }

    #[test]
    fn containers_visit_every_element_in_order() {
        let log = RefCell::new(Vec::new());
        let me = ProcessIdentity::current().unwrap();
        let values = (
            probe("a", &log),
            vec![probe("b", &log), probe("c", &log)],
            Some(probe("d", &log)),
            None::<Probe<'_>>,
            [probe("e", &log)],
            Box::new(probe("f", &log)),
        );
        values.hand_over(me).unwrap();
        values.adopt().unwrap();
        let pid = me.pid();
        let expected: Vec<String> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|n| format!("hand_over {n} {pid}"))
            .chain(
                ["a", "b", "c", "d", "e", "f"]
                    .iter()
                    .map(|n| format!("adopt {n}")),
            )
            .collect();
        assert_eq!(*log.borrow(), expected);
    }

    #[test]
    fn first_error_stops_the_walk() {
        let log = RefCell::new(Vec::new());
        let failing = Probe {
            name: "b",
            log: &log,
            fail_adopt: true,
        };
        let values = (probe("a", &log), failing, probe("c", &log));
        let err = values.adopt().unwrap_err();
        assert_eq!(err.to_string(), "b refused");
        assert_eq!(*log.borrow(), ["adopt a", "adopt b"]);
    }
}

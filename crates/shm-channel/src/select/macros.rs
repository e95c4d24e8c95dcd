//! [`select!`](crate::select!): a [`Select`](super::Select) and the receive that follows
//! it, written for you.

/// Receives from whichever of several receivers is ready first (see
/// [`Select`](crate::select::Select)).
///
/// Each arm `recv(rx) -> msg => body` names a receiver (a place: a variable or a field,
/// evaluated twice) of any flavor, bytes or typed; when it is the one ready, `msg` is what
/// its `try_recv()` returned — the message, or the error that ends its stream — and `body`
/// runs. An optional last arm `default => body` makes it not wait (a
/// [`try_select`](crate::select::Select::try_select)); `default(timeout) => body` waits at
/// most `timeout`. Without one it waits as long as it takes. At most
/// [`MAX_RECEIVERS`](crate::select::MAX_RECEIVERS) arms (checked when compiling).
///
/// ```
/// use std::time::Duration;
/// use shm_channel::select;
///
/// let (mut tx, mut numbers) = shm_channel::typed::channel::<u32>(4096)?;
/// let (stop_tx, mut stop) = shm_channel::spsc::channel(4096)?;
/// tx.send(1)?;
/// tx.send(2)?;
/// drop(stop_tx);
/// let mut sum = 0;
/// loop {
///     select! {
///         recv(numbers) -> n => sum += n?,
///         recv(stop) -> end => {
///             assert!(end.is_err()); // disconnected: the stop channel's end
///             break;
///         }
///         default(Duration::from_secs(10)) => panic!("nothing in 10 s"),
///     }
/// }
/// // `stop` may be picked before both numbers are in: what is left is still there.
/// while let Ok(n) = numbers.try_recv() {
///     sum += n;
/// }
/// assert_eq!(sum, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! select {
    // The arms, one at a time: a block body needs no comma after it, any other does.
    (@parse [$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:block, $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* ($rx) ($msg) ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* ($rx) ($msg) ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:expr, $($rest:tt)*) => {
        $crate::select!(@parse [$($arms)* ($rx) ($msg) ($body)] $($rest)*)
    };
    (@parse [$($arms:tt)*] recv($rx:expr) -> $msg:pat => $body:expr) => {
        $crate::select!(@parse [$($arms)* ($rx) ($msg) ($body)])
    };
    // The end: an optional default says how long to wait.
    (@parse [$($arms:tt)+]) => {
        $crate::select!(@run (select()) [$($arms)+] ())
    };
    (@parse [$($arms:tt)+] default => $default:expr $(,)?) => {
        $crate::select!(@run (try_select()) [$($arms)+] ($default))
    };
    (@parse [$($arms:tt)+] default($timeout:expr) => $default:expr $(,)?) => {
        $crate::select!(@run (select_timeout($timeout)) [$($arms)+] ($default))
    };
    (@run ($($call:tt)*) [$(($rx:expr) ($msg:pat) ($body:expr))+] ($($default:expr)?)) => {{
        const _: () = ::core::assert!(
            [$(::core::stringify!($rx)),+].len() <= $crate::select::MAX_RECEIVERS,
            "select!: more arms than a select can wait on"
        );
        let __ready: ::core::option::Option<usize> = {
            let mut __select = $crate::select::Select::new();
            $(__select.recv(&mut $rx);)+
            __select.$($call)*.ok()
        };
        $crate::select!(@arm __ready, 0usize, [$(($rx) ($msg) ($body))+] ($($default)?))
    }};
    // One arm, taken when its index is the one ready. Without a default the last arm is
    // what is left: only a set the select refuses, which these arms cannot make, gets
    // there without being ready, and its receive then says what it finds.
    (@arm $ready:ident, $index:expr, [($rx:expr) ($msg:pat) ($body:expr)] ()) => {{
        let $msg = $rx.try_recv();
        $body
    }};
    (@arm $ready:ident, $index:expr, [($rx:expr) ($msg:pat) ($body:expr) $($rest:tt)*]
        ($($default:expr)?)) => {
        if $ready == ::core::option::Option::Some($index) {
            let $msg = $rx.try_recv();
            $body
        } else {
            $crate::select!(@arm $ready, $index + 1usize, [$($rest)*] ($($default)?))
        }
    };
    (@arm $ready:ident, $index:expr, [] ($default:expr)) => {
        $default
    };
    // What users write.
    ($($arms:tt)+) => {
        $crate::select!(@parse [] $($arms)+)
    };
}

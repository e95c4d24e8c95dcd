//! [`Inherit`] for the endpoints of `shm-channel`: the parent's `hand_over` records the child
//! as the endpoint's owner (so the parent's copy no longer counts), the child's `adopt`
//! takes ownership in the child.

use shm_channel::codec::Codec;
use shm_channel::{bytes, typed};
use shm_core::liveness::ProcessIdentity;

use crate::inherit::{Inherit, InheritError};

impl Inherit for bytes::Sender {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        bytes::Sender::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        bytes::Sender::adopt(self).map_err(InheritError::new)
    }
}

impl Inherit for bytes::Receiver {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        bytes::Receiver::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        bytes::Receiver::adopt(self).map_err(InheritError::new)
    }
}

impl<T, C: Codec<T>> Inherit for typed::Sender<T, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        typed::Sender::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        typed::Sender::adopt(self).map_err(InheritError::new)
    }
}

impl<T, C: Codec<T>> Inherit for typed::Receiver<T, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        typed::Receiver::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        typed::Receiver::adopt(self).map_err(InheritError::new)
    }
}

impl Inherit for shm_channel::mpsc::Sender {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        shm_channel::mpsc::Sender::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        shm_channel::mpsc::Sender::adopt(self).map_err(InheritError::new)
    }
}

impl Inherit for shm_channel::mpsc::Receiver {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        shm_channel::mpsc::Receiver::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        shm_channel::mpsc::Receiver::adopt(self).map_err(InheritError::new)
    }
}

impl<T, C: Codec<T>> Inherit for shm_channel::mpsc::typed::Sender<T, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        shm_channel::mpsc::typed::Sender::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        shm_channel::mpsc::typed::Sender::adopt(self).map_err(InheritError::new)
    }
}

impl<T, C: Codec<T>> Inherit for shm_channel::mpsc::typed::Receiver<T, C> {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        shm_channel::mpsc::typed::Receiver::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        shm_channel::mpsc::typed::Receiver::adopt(self).map_err(InheritError::new)
    }
}

impl Inherit for shm_channel::broadcast::Sender {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        shm_channel::broadcast::Sender::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        shm_channel::broadcast::Sender::adopt(self).map_err(InheritError::new)
    }
}

impl Inherit for shm_channel::broadcast::Receiver {
    fn hand_over(&self, child: ProcessIdentity) -> Result<(), InheritError> {
        shm_channel::broadcast::Receiver::hand_over(self, child).map_err(InheritError::new)
    }

    fn adopt(&self) -> Result<(), InheritError> {
        shm_channel::broadcast::Receiver::adopt(self).map_err(InheritError::new)
    }
}

"""Pictures of poses: labelled videos (:mod:`.render`), the live preview's drawing (:mod:`.overlay`),
and figures (:mod:`.figures`, needs matplotlib). One colour per body part everywhere (:mod:`.colors`)."""

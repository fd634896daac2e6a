//! The guest images of the boot image as a user reads them: the `images`
//! table, sizes in bytes, KiB or MiB ([`ImageSize`]), and the list a
//! failed `create` ends with ([`ImageChoices`]).

use core::fmt;

use ipc::vm::GuestImage;

use crate::text::Printable;

/// A size as people read it: `512 bytes`, `8 KiB`, `3.4 MiB` (one decimal,
/// rounded, when it is not whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSize(pub u64);

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u128 = 1024;
        let bytes = u128::from(self.0);
        let (unit, name) = match bytes {
            0..KIB => return write!(f, "{bytes} bytes"),
            KIB..0x10_0000 => (KIB, "KiB"),
            _ => (KIB * KIB, "MiB"),
        };
        let tenths = (bytes * 10 + unit / 2) / unit;
        match tenths % 10 {
            0 => write!(f, "{} {name}", tenths / 10),
            tenth => write!(f, "{}.{tenth} {name}", tenths / 10),
        }
    }
}

/// One image as a failed `create` lists it: `hello (raw, 8 KiB)`.
#[derive(Clone, Copy, Debug)]
pub struct ImageChoice<'a>(pub &'a GuestImage);

impl fmt::Display for ImageChoice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let image = self.0;
        write!(
            f,
            "{} ({}, {})",
            Printable(&image.name),
            image.kind,
            ImageSize(image.size)
        )
    }
}

/// What a `create` that named an unknown image, or none, adds after its
/// error: `; the images are: hello (raw, 8 KiB), linux (Linux Image, 24
/// MiB)`, or that there are none.
#[derive(Clone, Copy, Debug)]
pub struct ImageChoices<'a>(pub &'a [GuestImage]);

impl fmt::Display for ImageChoices<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("; the boot image holds no guest images");
        }
        f.write_str("; the images are: ")?;
        for (at, image) in self.0.iter().enumerate() {
            if at > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", ImageChoice(image))?;
        }
        Ok(())
    }
}

/// The `images` table: a header line, then one line per image, every line
/// ending in `\n`; without images, one line that says so.
pub struct ImageTable<'a>(pub &'a [GuestImage]);

impl fmt::Display for ImageTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "the boot image holds no guest images");
        }
        let width = self
            .0
            .iter()
            .map(|image| Printable(&image.name).width())
            .fold(4, usize::max);
        writeln!(f, "{:<width$}  KIND         SIZE", "NAME")?;
        for image in self.0 {
            let name = Printable(&image.name);
            let pad = width - name.width();
            writeln!(
                f,
                "{name}{:pad$}  {:<11}  {}",
                "",
                image.kind,
                ImageSize(image.size)
            )?;
        }
        Ok(())
    }
}

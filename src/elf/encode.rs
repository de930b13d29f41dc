//! Encoding ELF tables back to bytes, in the file's class and byte order: what the writer
//! emits, and what reading a stamped file recomputes to see its original.

use goblin::container::{Container, Ctx};
use scroll::Pwrite;

/// `items` encoded one after another, `size` bytes each.
pub fn encode_all<T>(
    items: impl IntoIterator<Item = T>,
    size: usize,
    ctx: Ctx,
) -> Result<Vec<u8>, goblin::error::Error>
where
    T: scroll::ctx::TryIntoCtx<Ctx, Error = goblin::error::Error>,
{
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        out.resize((i + 1) * size, 0);
        out.pwrite_with(item, i * size, ctx)?;
    }
    Ok(out)
}

/// An address as the file stores it (4 or 8 bytes).
pub fn encode_addr(ctx: Ctx, value: u64) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    let n = if ctx.container == Container::Big {
        b.pwrite_with(value, 0, ctx.le)
    } else {
        b.pwrite_with(value as u32, 0, ctx.le)
    };
    b.truncate(n.unwrap_or(0));
    b
}

// Byte-level tokenizer: every UTF-8 byte is a token, so any text round-trips losslessly.
// Documents are joined with a blank line, which the model learns as a boundary.
export const BYTE_VOCAB_SIZE = 256;

/** A token stream: bytes for the byte tokenizer, 16-bit ids for a BPE vocabulary. */
export type TokenIds = Uint8Array | Uint16Array;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeDocuments(docs: Iterable<string>): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const doc of docs) {
    const bytes = encoder.encode(doc + '\n\n');
    parts.push(bytes);
    total += bytes.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function decode(tokens: ArrayLike<number>): string {
  return decoder.decode(Uint8Array.from(tokens));
}

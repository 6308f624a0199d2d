/**
 * Z85 (ZeroMQ RFC 32), the text form of CurveZMQ keys: 32 bytes are 40 characters. What the ZAP handler
 * needs to compare a peer's binary public key with the keys of an allow-list.
 */
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const VALUE = new Map([...ALPHABET].map((c, i) => [c, i]));

/** A CurveZMQ key in Z85: 40 characters of the Z85 alphabet that decode to 32 bytes. */
export function isZ85Key(text: unknown): text is string {
  return typeof text === "string" && text.length === 40 && z85Decode(text) !== null;
}

/** Encodes bytes (a multiple of 4) as Z85. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError("Z85 encodes a multiple of 4 bytes");
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
    let chunk = "";
    for (let j = 0; j < 5; j++) {
      chunk = ALPHABET[value % 85] + chunk;
      value = Math.floor(value / 85);
    }
    out += chunk;
  }
  return out;
}

/** Decodes Z85 text (a multiple of 5 characters); null when it is not Z85. */
export function z85Decode(text: string): Buffer | null {
  if (text.length % 5 !== 0) return null;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const digit = VALUE.get(text[i + j]);
      if (digit === undefined) return null;
      value = value * 85 + digit;
    }
    // Five characters can say more than 32 bits; libzmq refuses such text, and so does this.
    if (value > 0xffffffff) return null;
    out.writeUInt32BE(value, (i / 5) * 4);
  }
  return out;
}

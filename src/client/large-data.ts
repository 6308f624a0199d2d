import type { ZgridClient } from "./client.js";

/** Chunk size when the server does not say (it reports its own as `chunkBytes` in getconfig). */
export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

async function chunkBytes(client: ZgridClient, given?: number): Promise<number> {
  if (given) return given;
  const config = await client.getConfig();
  return typeof config.chunkBytes === "number" && config.chunkBytes > 0
    ? config.chunkBytes
    : DEFAULT_CHUNK_BYTES;
}

/**
 * Uploads data of any size to a CREATED result in chunks under the server's frame limit; the server
 * assembles them in one buffer. Resolves once the result is COMPLETED and stored.
 */
export async function uploadLarge(
  client: ZgridClient,
  resultId: string,
  data: Uint8Array,
  chunk?: number,
): Promise<void> {
  const size = await chunkBytes(client, chunk);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let offset = 0;
  do {
    const part = buf.subarray(offset, offset + size);
    await client.request(
      "results.upload",
      { resultId, offset, ...(offset === 0 ? { size: buf.length } : {}) },
      [part],
    );
    offset += part.length;
  } while (offset < buf.length);
}

/** Downloads a result of any size range by range into one buffer. */
export async function downloadLarge(client: ZgridClient, resultId: string, chunk?: number): Promise<Buffer> {
  const size = await chunkBytes(client, chunk);
  const first = await client.request<{ size: number; length: number }>("results.download", {
    resultId,
    offset: 0,
    length: size,
  });
  const total = first.msg.size;
  const out = Buffer.allocUnsafe(total);
  first.blobs[0].copy(out, 0);
  let offset = first.msg.length;
  while (offset < total) {
    const r = await client.request<{ length: number }>("results.download", {
      resultId,
      offset,
      length: size,
    });
    if (r.msg.length === 0)
      throw new Error(`the download of ${resultId} stopped at ${offset} of ${total} bytes`);
    r.blobs[0].copy(out, offset);
    offset += r.msg.length;
  }
  return out;
}

// A plain require: Pulumi serializes a module only when the handler captures the module object itself.
import busboy = require("busboy");
import { BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError } from "./errors";
import { header, type HttpEvent } from "./http";

/** One uploaded file of a multipart/form-data body. */
export interface UploadedFile {
  fieldName: string;
  fileName: string;
  contentType: string;
  data: Buffer;
}

/** The raw body bytes of an API Gateway event (binary bodies arrive base64-encoded). */
export function bodyBytes(event: HttpEvent): Buffer {
  const raw = event.body ?? "";
  return event.isBase64Encoded ? Buffer.from(raw, "base64") : Buffer.from(raw, "utf8");
}

/**
 * Reads the file part named `fieldName` from a multipart/form-data request. 415 when the body is
 * not multipart, 413 when the file is over `maxFileBytes`, 400 when there is no such part or the
 * body is malformed. Other fields and files are ignored.
 */
export async function readMultipartFile(
  event: HttpEvent,
  fieldName: string,
  maxFileBytes: number,
): Promise<UploadedFile> {
  const contentType = header(event, "content-type") ?? "";
  if (!/^multipart\/form-data\s*;/i.test(contentType) || !/boundary=/i.test(contentType)) {
    throw new UnsupportedMediaTypeError(
      `request body must be multipart/form-data with a "${fieldName}" part (got ${contentType ? `"${contentType.slice(0, 100)}"` : "no content-type"})`,
    );
  }
  const bytes = bodyBytes(event);
  return new Promise<UploadedFile>((resolve, reject) => {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: { "content-type": contentType },
        limits: { files: 5, fields: 50, fileSize: maxFileBytes, parts: 60, fieldSize: 64 * 1024 },
      });
    } catch (error) {
      reject(new BadRequestError(`malformed multipart/form-data: ${(error as Error).message.slice(0, 200)}`));
      return;
    }
    let found: UploadedFile | undefined;
    let failure: Error | undefined;
    parser.on("file", (name, stream, info) => {
      if (name !== fieldName || found || failure) {
        stream.resume();
        return;
      }
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("limit", () => {
        failure = new PayloadTooLargeError(`file is over the limit of ${maxFileBytes} bytes`);
      });
      stream.on("close", () => {
        if (failure) return;
        found = {
          fieldName: name,
          fileName: info.filename ?? "",
          contentType: info.mimeType,
          data: Buffer.concat(chunks),
        };
      });
    });
    parser.on("error", (error: Error) =>
      reject(failure ?? new BadRequestError(`malformed multipart/form-data: ${error.message.slice(0, 200)}`)),
    );
    parser.on("close", () => {
      if (failure) reject(failure);
      else if (!found) {
        reject(
          new BadRequestError(
            `the form has no file part named "${fieldName}": send the file as ${fieldName}=@<path>`,
          ),
        );
      } else resolve(found);
    });
    parser.end(bytes);
  });
}

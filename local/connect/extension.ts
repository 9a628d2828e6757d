import { join } from "node:path";
import { extractExtensionArchive } from "../../lib/archive";
import { objectKeys, type ObjectStore } from "../../lib/objects";

/**
 * Unpacks the session's extension from the object store into its profile folder and returns the
 * switches that load it (what the Proxy does before it relays a client's connection). The archive
 * is read by the key the API wrote it under, so an extension deleted after the session was
 * created still loads (deleted archives are kept a day).
 */
export async function loadExtension(
  projectId: string,
  extensionId: string,
  profileDir: string,
  deps: { objects?: ObjectStore },
): Promise<string[]> {
  if (!deps.objects)
    throw new Error("the session has an extension, but no object store is configured (OBJECT_STORE)");
  const archive = await deps.objects.get(objectKeys.extension(projectId, extensionId));
  if (!archive) throw new Error(`the archive of extension ${extensionId} is missing from the object store`);
  const dir = join(profileDir, "extensions", extensionId);
  await extractExtensionArchive(archive, dir);
  return [`--load-extension=${dir}`, `--disable-extensions-except=${dir}`];
}

/**
 * Protocol clients for one test file: `track` registers a client and every
 * registered client is closed after each test; `connect` opens one to a room
 * of the shared worker and tracks it.
 */
import { afterEach } from "vitest"
import { workerUrl } from "./inject.ts"
import { ProtocolClient, roomUrl } from "./protocol.ts"

/** Call once at the top of a test file. */
export const protocolClients = () => {
  const open: Array<ProtocolClient> = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()))
  })
  const track = (client: ProtocolClient) => {
    open.push(client)
    return client
  }
  return {
    track,
    connect: async (room: string) => track(await ProtocolClient.connect(roomUrl(workerUrl(), room)))
  }
}

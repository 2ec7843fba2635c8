/** The chat page: the room's members and messages, synced with the worker. */
import { createRoot } from "react-dom/client"
import { PartySocket } from "partysocket"
import { Chat } from "./Chat"

const params = new URLSearchParams(location.search)
const room = params.get("room") ?? "lobby"
const name = params.get("name") ?? "guest"
const socket = new PartySocket({ host: location.host, party: "chat-room", room, query: { name } })

createRoot(document.getElementById("root")!).render(<Chat socket={socket} name={name} />)

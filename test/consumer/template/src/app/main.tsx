/** The chat page: the room's members and messages, synced with the worker. */
import { createRoot } from "react-dom/client"
import { PartySocket } from "partysocket"
import { Chat } from "./Chat"

const room = new URLSearchParams(location.search).get("room") ?? "lobby"
const socket = new PartySocket({ host: location.host, party: "chat-room", room })

createRoot(document.getElementById("root")!).render(<Chat socket={socket} name="me" />)

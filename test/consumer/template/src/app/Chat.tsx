/** One room: join, post, retract; posts show at once (optimistic) and roll back if refused. */
import { useSync, useSyncStatus } from "effect-partysync/react"
import type { PartySocket } from "partysocket"
import { useState } from "react"
import { type Message, type MessageAction, members, messages } from "../shared"

const optimistic = (rows: ReadonlyArray<Message>, action: MessageAction): ReadonlyArray<Message> =>
  action.type === "post"
    ? [...rows, [action.payload.id, action.payload.author, action.payload.text, Date.now(), null]]
    : rows.filter((row) => row[0] !== action.payload.id)

export function Chat({ socket, name }: { readonly socket: PartySocket; readonly name: string }) {
  const [posts, sendMessage] = useSync(messages, socket, optimistic)
  const [people, sendMember] = useSync(members, socket)
  const status = useSyncStatus(messages, socket)
  const [draft, setDraft] = useState("")
  const [error, setError] = useState<string | null>(null)

  const post = () => {
    setDraft("")
    sendMessage({ type: "post", payload: { id: crypto.randomUUID(), author: name, text: draft } }).catch((e: unknown) =>
      setError(e instanceof Error ? e.message : String(e))
    )
  }

  return (
    <main>
      <p>{status.connection}{status.pending > 0 ? `, ${status.pending} pending` : ""}{error === null ? "" : ` — ${error}`}</p>
      <button onClick={() => void sendMember({ type: "join", payload: { id: name } })}>join</button>
      <ul>{people.map(([id]) => <li key={id}>{id}</li>)}</ul>
      <ul>
        {posts.map(([id, author, text]) => (
          <li key={id}>
            <b>{author}</b> {text}{" "}
            <button onClick={() => void sendMessage({ type: "retract", payload: { id } })}>retract</button>
          </li>
        ))}
      </ul>
      <input value={draft} onChange={(e) => setDraft(e.target.value)} />
      <button onClick={post}>send</button>
    </main>
  )
}

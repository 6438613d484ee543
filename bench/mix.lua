-- wrk script for the soak (bench/soak.py): chat calls in a fixed cycle of ten,
-- 3 of them streamed, OpenAI and Anthropic shapes. Headers, key and the
-- WRK_JSON summary are post.lua's (loaded from this script's folder).
local folder = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(folder .. "post.lua")

local openai = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]%s}'
local anthropic = '{"model":"claude-3-5-haiku-latest","max_tokens":64,' ..
  '"messages":[{"role":"user","content":"Say hi"}]%s}'
local cycle = {
  {"/v1/chat/completions", openai, false},
  {"/v1/messages", anthropic, false},
  {"/v1/chat/completions", openai, true},
  {"/v1/chat/completions", openai, false},
  {"/v1/messages", anthropic, true},
  {"/v1/chat/completions", openai, false},
  {"/v1/messages", anthropic, false},
  {"/v1/chat/completions", openai, true},
  {"/v1/chat/completions", openai, false},
  {"/v1/messages", anthropic, false},
}
local requests = {}
local turn = 0

init = function(args)
  for i, call in ipairs(cycle) do
    local path, body, stream = call[1], call[2], call[3]
    local headers = {}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    if path == "/v1/messages" then
      headers["Authorization"] = nil
      headers["x-api-key"] = "sk-ant-bench-provider-key"
      headers["anthropic-version"] = "2023-06-01"
    end
    requests[i] = wrk.format("POST", path, headers, body:format(stream and ',"stream":true' or ""))
  end
end

request = function()
  turn = turn % #requests + 1
  return requests[turn]
end

-- codeexec-lsp for Neovim 0.11+: commands and keymaps that call the server's
-- `workspace/executeCommand` commands (codeexec.run / explain / fix / restart).
--
-- Public functions (map them yourself if you turn the default keymaps off):
--   require('codeexec').run()            statement / `# %%` cell under the cursor,
--                                        or the selection when called in visual mode
--   require('codeexec').run_file()
--   require('codeexec').explain()        same targets as run()
--   require('codeexec').fix()            same targets as run()
--   require('codeexec').cancel()         cancel the runs in progress
--   require('codeexec').restart(force)   restart the session (force: the language server)
--   require('codeexec').setup(opts)      for lazy.nvim `opts`; see README.md

local M = {}

M.name = 'codeexec'

local api = vim.api
local levels = vim.log.levels

local function notify(message, level)
  vim.notify('codeexec: ' .. message, level or levels.INFO, { title = 'codeexec' })
end

---@param bufnr? integer
---@return vim.lsp.Client?
function M.client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  return vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
end

-- --- a server that cannot start --------------------------------------------------------
-- Neovim's vim.lsp.enable silently skips a config whose `cmd` is not executable (it only
-- writes lsp.log), and says little more than "quit with exit code 1" when the server dies.
-- The usual cause is Neovim started outside the virtualenv the server was installed in, so
-- say once, naming the command and how to fix it.

M.install_hint = 'install it with `pipx install /path/to/codeexec-lsp` (your clone) or '
  .. '`pipx install git+<the repository URL you cloned>`'
M.cmd_hint = "or point Neovim at an install: vim.lsp.config('codeexec', "
  .. "{ cmd = { '/path/to/codeexec-lsp/.venv/bin/codeexec-lsp' } })"

local warned_commands = {} ---@type table<string, boolean>

local function server_command()
  local config = vim.lsp.config[M.name]
  local cmd = config and config.cmd
  if type(cmd) == 'table' and type(cmd[1]) == 'string' then
    return cmd, config
  end
end

--- The last line the server wrote to stderr, as Neovim logged it (empty if none).
local function last_stderr_line(program)
  local ok, lines = pcall(vim.fn.readfile, vim.lsp.get_log_path(), '', -400)
  if not ok then
    return ''
  end
  for i = #lines, 1, -1 do
    local line = lines[i]
    if line:find('"stderr"', 1, true) and line:find(program, 1, true) then
      local text = line:match('"stderr"%s+"(.*)"%s*$') or ''
      text = text:gsub('\\n', '\n'):gsub('\\t', ' '):gsub('\\"', '"')
      local parts = vim.tbl_filter(function(part)
        return vim.trim(part) ~= ''
      end, vim.split(text, '\n'))
      if #parts > 0 then
        return vim.trim(parts[#parts]):sub(1, 200)
      end
    end
  end
  return ''
end

--- Warn (once per command) when a buffer the `codeexec` config applies to opens and its
--- command cannot be found, instead of Neovim's silent skip.
---@param bufnr integer
function M.check_server(bufnr)
  if not vim.lsp.is_enabled(M.name) or not api.nvim_buf_is_valid(bufnr) then
    return
  end
  local cmd, config = server_command()
  if not cmd or vim.bo[bufnr].buftype ~= '' then
    return
  end
  if config.filetypes and not vim.list_contains(config.filetypes, vim.bo[bufnr].filetype) then
    return
  end
  if vim.fn.executable(cmd[1]) == 1 then
    return
  end
  local key = table.concat(cmd, ' ')
  if warned_commands[key] then
    return
  end
  warned_commands[key] = true
  local what = cmd[1] == 'codeexec-lsp'
      and '`codeexec-lsp` is not on the PATH Neovim was started with'
    or ('`%s` (the cmd set for codeexec) is not an executable'):format(cmd[1])
  vim.schedule(function()
    notify(
      ('cannot start the language server: %s. To fix: %s, %s.'):format(
        what,
        M.install_hint,
        M.cmd_hint
      ),
      levels.WARN
    )
  end)
end

--- `on_exit` of the codeexec client (lsp/codeexec.lua): a server that exits with an error,
--- during `initialize` or later, is reported with the command and what to do.
---@param code integer
---@param signal integer
---@param client_id integer
function M.on_exit(code, signal, client_id)
  if code == 0 and (signal == 0 or signal == 15) then
    return
  end
  local client = vim.lsp.get_client_by_id(client_id)
  local started = client ~= nil and client.initialized == true
  local cmd = client and type(client.config.cmd) == 'table' and client.config.cmd
    or server_command()
    or { 'codeexec-lsp' }
  vim.schedule(function()
    local why = code ~= 0 and ('exit status %d'):format(code) or ('signal %d'):format(signal)
    local said = last_stderr_line(cmd[1])
    local program = vim.fs.basename(cmd[1])
    local check = program == 'codeexec-lsp'
        and (' Check it in a shell: `%s doctor`.'):format(cmd[1])
      or ''
    notify(
      ('the language server `%s` %s (%s)%s.%s To fix: %s, %s; then :CodeexecRestart!. '
        .. 'Log: :lua vim.cmd.tabedit(vim.lsp.get_log_path())'):format(
        table.concat(cmd, ' '),
        started and 'stopped' or 'exited while starting',
        why,
        said ~= '' and (': ' .. said) or '',
        check,
        M.install_hint,
        M.cmd_hint
      ),
      levels.WARN
    )
  end)
end

local function attached_client(bufnr)
  local client = M.client(bufnr)
  if not client then
    local cmd = server_command()
    notify(
      ('the language server is not attached to this buffer (is `%s` installed where Neovim '
        .. 'finds it? To fix: %s, %s; see :checkhealth codeexec)'):format(
        cmd and cmd[1] or 'codeexec-lsp',
        M.install_hint,
        M.cmd_hint
      ),
      levels.WARN
    )
  end
  return client
end

-- --- ranges ------------------------------------------------------------------------------
-- LSP positions count characters in the client's negotiated offset encoding (utf-8,
-- utf-16 or utf-32); Neovim counts bytes. Every column goes through
-- vim.lsp.util.character_offset with client.offset_encoding.

local function line_text(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- LSP position of (0-based row, 0-based byte column).
local function position(bufnr, row, col, encoding)
  local text = line_text(bufnr, row)
  col = math.max(0, math.min(col, #text))
  if col == 0 then
    return { line = row, character = 0 }
  end
  return { line = row, character = vim.lsp.util.character_offset(bufnr, row, col, encoding) }
end

--- Whole lines `first`..`last` (1-based, inclusive): start of the first to end of the last.
---@return lsp.Range
function M.lines_range(bufnr, client, first, last)
  if first > last then
    first, last = last, first
  end
  local last_row = last - 1
  return {
    start = { line = first - 1, character = 0 },
    ['end'] = position(bufnr, last_row, #line_text(bufnr, last_row), client.offset_encoding),
  }
end

--- A charwise range between two (1-based row, 0-based byte col) positions, both characters
--- included (as Vim's visual mode selects them, unless 'selection' is "exclusive").
---@return lsp.Range
function M.chars_range(bufnr, client, from, to)
  if to[1] < from[1] or (to[1] == from[1] and to[2] < from[2]) then
    from, to = to, from
  end
  local encoding = client.offset_encoding
  local end_row = to[1] - 1
  local end_col = to[2]
  local text = line_text(bufnr, end_row)
  if vim.o.selection ~= 'exclusive' and end_col < #text then
    -- past the whole last character (it may take several bytes / UTF-16 units)
    end_col = end_col + vim.str_utf_end(text, end_col + 1) + 1
  end
  return {
    start = position(bufnr, from[1] - 1, from[2], encoding),
    ['end'] = position(bufnr, end_row, end_col, encoding),
  }
end

--- An empty range at the cursor: the server picks the `# %%` cell or the statement there.
---@return lsp.Range
function M.cursor_range(client)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  return { start = params.position, ['end'] = params.position }
end

--- The range of the current visual selection (call while still in visual mode).
local function visual_range(bufnr, client)
  local mode = vim.fn.mode()
  local v, cursor = vim.fn.getpos('v'), vim.fn.getpos('.')
  if mode == 'v' then
    return M.chars_range(bufnr, client, { v[2], v[3] - 1 }, { cursor[2], cursor[3] - 1 })
  end
  -- linewise (V) and blockwise (CTRL-V) selections run whole lines
  return M.lines_range(bufnr, client, v[2], cursor[2])
end

--- The range of an Ex command: `:'<,'>Cmd` right after a charwise visual selection keeps
--- its columns; any other line range means whole lines; no range means the cursor.
local function command_range(bufnr, client, cmd)
  if not cmd or cmd.range == 0 then
    return M.cursor_range(client)
  end
  local from, to = api.nvim_buf_get_mark(bufnr, '<'), api.nvim_buf_get_mark(bufnr, '>')
  if
    cmd.range == 2
    and vim.fn.visualmode() == 'v'
    and from[1] == cmd.line1
    and to[1] == cmd.line2
  then
    return M.chars_range(bufnr, client, from, to)
  end
  return M.lines_range(bufnr, client, cmd.line1, cmd.line2)
end

--- The target of an action: the visual selection in visual mode, the command's range for
--- a user command, else the cursor (statement or cell).
---@param opts? { range?: lsp.Range, cmd?: table }
local function target_range(bufnr, client, opts)
  opts = opts or {}
  if opts.range then
    return opts.range
  end
  if opts.cmd then
    return command_range(bufnr, client, opts.cmd)
  end
  local mode = vim.fn.mode()
  if mode == 'v' or mode == 'V' or mode == '\22' then
    local range = visual_range(bufnr, client)
    api.nvim_feedkeys(vim.keycode('<Esc>'), 'n', false)
    return range
  end
  return M.cursor_range(client)
end

-- --- commands ----------------------------------------------------------------------------

local function error_text(err)
  if type(err) == 'table' then
    return err.message or vim.inspect(err)
  end
  return tostring(err)
end

-- What the server showed on its own, so the client neither repeats an error message the
-- server already showed (window/showMessage) nor opens the explanation a second time when
-- the server opened it (window/showDocument).
local shown_documents = 0
local shown_messages = {} ---@type string[] the last few, newest last
local watched_clients = {} ---@type table<integer, boolean>

local function watch_server_output(client)
  if watched_clients[client.id] then
    return
  end
  watched_clients[client.id] = true
  -- a copy: the table may be shared with the cached config of later clients
  local handlers = vim.tbl_extend('force', {}, client.handlers or {})
  local function wrap(method, before)
    local inner = handlers[method]
    handlers[method] = function(err, result, ctx, config)
      pcall(before, result)
      return (inner or vim.lsp.handlers[method])(err, result, ctx, config)
    end
  end
  wrap('window/showDocument', function()
    shown_documents = shown_documents + 1
  end)
  wrap('window/showMessage', function(result)
    table.insert(shown_messages, result.message)
    if #shown_messages > 10 then
      table.remove(shown_messages, 1)
    end
  end)
  client.handlers = handlers
end

--- Send `workspace/executeCommand` to the codeexec client of `bufnr`. `on_result` gets the
--- command's result; an error answer is shown with vim.notify.
---@param command string
---@param arguments any[]
---@param on_result? fun(result: any, client: vim.lsp.Client)
---@param bufnr? integer
---@return boolean sent
function M.execute(command, arguments, on_result, bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client = attached_client(bufnr)
  if not client then
    return false
  end
  local params = { command = command, arguments = arguments }
  local ok = client:request('workspace/executeCommand', params, function(err, result)
    if err then
      local text = error_text(err)
      if not vim.list_contains(shown_messages, text) then -- else the server showed it already
        notify(('%s failed: %s'):format(command, text), levels.ERROR)
      end
      return
    end
    if on_result then
      on_result(result, client)
    end
  end, bufnr)
  if not ok then
    notify(('could not send %s: the server has stopped'):format(command), levels.ERROR)
  end
  return ok and true or false
end

local function one_line(text, limit)
  text = vim.trim((tostring(text or ''):gsub('%s+', ' ')))
  if vim.fn.strcharlen(text) > limit then
    text = vim.fn.strcharpart(text, 0, limit - 1) .. '…'
  end
  return text
end

--- A one-line echo of a RunResult; the details are on hover (K) and in the diagnostics.
local function echo_result(result)
  if type(result) ~= 'table' or vim.g.codeexec_echo == false then
    return
  end
  local ms = ('%.0f ms'):format(tonumber(result.duration_ms) or 0)
  local text, hl
  if result.status == 'ok' then
    local shown = result.value ~= vim.NIL and result.value
      or vim.split(vim.trim(result.stdout or ''), '\n')[1]
    text = ('ran fine (%s)'):format(ms) .. ((shown and shown ~= '') and (' → ' .. shown) or '')
    hl = 'Normal'
  elseif result.status == 'error' and type(result.error) == 'table' then
    local err = result.error
    local where = err.line ~= vim.NIL and err.line and (' at line ' .. err.line) or ''
    text = ('%s: %s%s'):format(err.type, err.message, where)
    hl = 'DiagnosticError'
  else
    local message = result.message ~= vim.NIL and result.message or ''
    text = message ~= '' and message or tostring(result.status)
    hl = 'DiagnosticWarn'
  end
  local width = math.max(20, (vim.v.echospace or 80) - 12)
  api.nvim_echo({ { 'codeexec: ' .. one_line(text, width), hl } }, false, {})
end

local function uri(bufnr)
  return vim.uri_from_bufnr(bufnr)
end

--- Run the statement or `# %%` cell under the cursor, or the selection in visual mode.
---@param opts? { range?: lsp.Range, cmd?: table, bufnr?: integer, on_result?: fun(result: table) }
function M.run(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  if not client then
    return false
  end
  local range = target_range(bufnr, client, opts)
  return M.execute('codeexec.run', { uri(bufnr), range }, function(result)
    echo_result(result)
    if opts.on_result then
      opts.on_result(result)
    end
  end, bufnr)
end

--- Run the whole file.
function M.run_file(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  return M.execute('codeexec.run', { uri(bufnr) }, function(result)
    echo_result(result)
    if opts.on_result then
      opts.on_result(result)
    end
  end, bufnr)
end

local function show_markdown(markdown)
  local name = 'codeexec://explanation'
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(buf, name)
    vim.bo[buf].filetype = 'markdown'
    vim.bo[buf].bufhidden = 'hide'
  end
  vim.bo[buf].modifiable = true
  api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(markdown, '\n'))
  vim.bo[buf].modifiable = false
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd('botright split')
    win = api.nvim_get_current_win()
    api.nvim_win_set_buf(win, buf)
  end
  api.nvim_set_current_win(win)
end

--- Ask the model to explain the target (statement/cell under the cursor or the selection).
function M.explain(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  if not client then
    return false
  end
  watch_server_output(client)
  local before = shown_documents
  local range = target_range(bufnr, client, opts)
  notify('asking for an explanation…')
  return M.execute('codeexec.explain', { uri(bufnr), range }, function(result)
    if opts.on_result then
      opts.on_result(result)
    end
    local markdown = type(result) == 'table' and result.markdown
    if shown_documents == before and type(markdown) == 'string' and markdown ~= '' then
      show_markdown(markdown)
    end
  end, bufnr)
end

--- Ask the model to fix the target; the server applies a (verified) fix as an edit.
function M.fix(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  local client = attached_client(bufnr)
  if not client then
    return false
  end
  local range = target_range(bufnr, client, opts)
  notify('asking for a fix…')
  return M.execute('codeexec.fix', { uri(bufnr), range }, function(result)
    if opts.on_result then
      opts.on_result(result)
    end
    if type(result) ~= 'table' then
      return
    end
    local message = result.message ~= vim.NIL and result.message or ''
    if result.applied == true then
      local how = result.verified == true and 'verified fix applied' or 'unverified fix applied'
      notify(how .. (message ~= '' and (': ' .. message) or ''))
    else
      notify('no fix applied' .. (message ~= '' and (': ' .. message) or ''), levels.WARN)
    end
  end, bufnr)
end

-- Work-done progress tokens of running codeexec work, per client: cancel() cancels them.
local progress = {} ---@type table<integer, table<string|integer, boolean>>

--- Cancel every codeexec run in progress (the code is stopped at once).
function M.cancel()
  local cancelled = 0
  for client_id, tokens in pairs(progress) do
    local client = vim.lsp.get_client_by_id(client_id)
    for token in pairs(tokens) do
      if client then
        client:notify('window/workDoneProgress/cancel', { token = token })
        cancelled = cancelled + 1
      end
    end
    progress[client_id] = nil
  end
  notify(cancelled > 0 and ('cancelled %d run(s)'):format(cancelled) or 'nothing is running')
end

local function restart_server()
  local clients = vim.lsp.get_clients({ name = M.name })
  for _, client in ipairs(clients) do
    client:stop()
  end
  vim.wait(3000, function()
    return #vim.lsp.get_clients({ name = M.name }) == 0
  end, 50)
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    client:stop(true)
  end
  if vim.lsp.is_enabled(M.name) then
    vim.lsp.enable(M.name) -- starts it again for the open Python buffers
  else
    notify('stopped codeexec-lsp; `vim.lsp.enable("codeexec")` starts it again', levels.WARN)
    return
  end
  notify('restarted codeexec-lsp')
end

--- Restart the server's execution session (`codeexec.restart`). With `force`, or when the
--- server has no such command, restart the language server itself.
function M.restart(force)
  local bufnr = api.nvim_get_current_buf()
  local client = M.client(bufnr) or vim.lsp.get_clients({ name = M.name })[1]
  local provider = client and client.server_capabilities.executeCommandProvider
  local commands = type(provider) == 'table' and provider.commands or {}
  if force or not client or not vim.list_contains(commands, 'codeexec.restart') then
    restart_server()
    return
  end
  local params = { command = 'codeexec.restart', arguments = {} }
  client:request('workspace/executeCommand', params, function(err)
    if err then
      notify('codeexec.restart failed: ' .. error_text(err), levels.ERROR)
    else
      notify('session restarted')
    end
  end, M.client(bufnr) and bufnr or nil)
end

-- --- keymaps, user commands, autocommands ---------------------------------------------------

--- The default keymaps (lhs after the prefix, default prefix `<leader>e`).
M.keymaps = {
  { 'r', { 'n', 'x' }, 'run', 'codeexec: run statement/cell (visual: selection)' },
  { 'R', 'n', 'run_file', 'codeexec: run file' },
  { 'e', { 'n', 'x' }, 'explain', 'codeexec: explain (visual: selection)' },
  { 'f', { 'n', 'x' }, 'fix', 'codeexec: fix with LLM (visual: selection)' },
  { 'c', 'n', 'cancel', 'codeexec: cancel running code' },
}

--- Buffer-local keymaps for a buffer the codeexec client attached to.
function M.set_keymaps(bufnr)
  if vim.g.codeexec_no_keymaps then
    return
  end
  local prefix = vim.g.codeexec_keymap_prefix or '<leader>e'
  for _, map in ipairs(M.keymaps) do
    local suffix, modes, fn, desc = map[1], map[2], map[3], map[4]
    vim.keymap.set(modes, prefix .. suffix, function()
      M[fn]()
    end, { buffer = bufnr, desc = desc, silent = true })
  end
end

local function on_attach(client, bufnr)
  watch_server_output(client)
  M.set_keymaps(bufnr)
  if vim.g.codeexec_inlay_hints ~= false and client:supports_method('textDocument/inlayHint') then
    vim.lsp.inlay_hint.enable(true, { bufnr = bufnr })
  end
end

local registered = false

--- Create the user commands and autocommands (idempotent; plugin/codeexec.lua calls it).
function M.register()
  if registered then
    return
  end
  registered = true
  local group = api.nvim_create_augroup('codeexec', { clear = true })

  api.nvim_create_autocmd('LspAttach', {
    group = group,
    desc = 'codeexec: keymaps and inlay hints',
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == M.name then
        on_attach(client, args.buf)
      end
    end,
  })

  api.nvim_create_autocmd('LspProgress', {
    group = group,
    desc = 'codeexec: remember running work so :CodeexecCancel can cancel it',
    callback = function(args)
      local data = args.data or {}
      local client = vim.lsp.get_client_by_id(data.client_id)
      local params = data.params or {}
      local value = params.value
      if not client or client.name ~= M.name or type(value) ~= 'table' then
        return
      end
      progress[client.id] = progress[client.id] or {}
      if value.kind == 'begin' then
        progress[client.id][params.token] = true
      elseif value.kind == 'end' then
        progress[client.id][params.token] = nil
      end
    end,
  })

  local command = api.nvim_create_user_command
  command('CodeexecRun', function(cmd)
    M.run({ cmd = cmd })
  end, { range = true, desc = 'codeexec: run the statement/cell under the cursor, or the range' })
  command('CodeexecRunFile', function()
    M.run_file()
  end, { desc = 'codeexec: run the whole file' })
  command('CodeexecExplain', function(cmd)
    M.explain({ cmd = cmd })
  end, { range = true, desc = 'codeexec: explain the statement/cell or the range' })
  command('CodeexecFix', function(cmd)
    M.fix({ cmd = cmd })
  end, { range = true, desc = 'codeexec: fix the statement/cell or the range with the LLM' })
  command('CodeexecCancel', function()
    M.cancel()
  end, { desc = 'codeexec: cancel running code' })
  command('CodeexecRestart', function(cmd)
    M.restart(cmd.bang)
  end, { bang = true, desc = 'codeexec: restart the session (!: the language server)' })

  api.nvim_create_autocmd('FileType', {
    group = group,
    desc = 'codeexec: say so when the server command cannot be found',
    callback = function(args)
      M.check_server(args.buf)
    end,
  })
  for _, bufnr in ipairs(api.nvim_list_bufs()) do -- loaded before this ran (lazy-loading)
    if api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].filetype ~= '' then
      M.check_server(bufnr)
    end
  end

  -- Buffers the client attached to before this ran (e.g. lazy-loaded plugin).
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    for bufnr in pairs(client.attached_buffers or {}) do
      on_attach(client, bufnr)
    end
  end
end

--- For lazy.nvim's `opts` (or call it from your init.lua).
---@class codeexec.SetupOpts
---@field cmd? string[] the server command (default { 'codeexec-lsp' })
---@field settings? table the `codeexec` settings section
---@field server? vim.lsp.Config any other fields for vim.lsp.config('codeexec', ...)
---@field keymaps? boolean false: no default keymaps
---@field prefix? string keymap prefix (default '<leader>e')
---@field inlay_hints? boolean false: do not turn inlay hints on
---@field enable? boolean false: do not call vim.lsp.enable('codeexec')

---@param opts? codeexec.SetupOpts
function M.setup(opts)
  opts = opts or {}
  if opts.keymaps == false then
    vim.g.codeexec_no_keymaps = true
  end
  if opts.prefix then
    vim.g.codeexec_keymap_prefix = opts.prefix
  end
  if opts.inlay_hints ~= nil then
    vim.g.codeexec_inlay_hints = opts.inlay_hints
  end
  local server = vim.deepcopy(opts.server or {})
  if opts.cmd then
    server.cmd = opts.cmd
  end
  if opts.settings then
    local section = { codeexec = opts.settings }
    server.settings = vim.tbl_deep_extend('force', server.settings or {}, section)
  end
  if next(server) then
    vim.lsp.config(M.name, server)
  end
  M.register()
  if opts.enable ~= false then
    vim.lsp.enable(M.name)
    for _, bufnr in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(bufnr) then
        M.check_server(bufnr)
      end
    end
  end
end

return M

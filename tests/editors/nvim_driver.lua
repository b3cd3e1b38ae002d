-- Drives real headless Neovim through the shipped editors/nvim config for test_nvim.py.
--
-- Started as `nvim --headless -u editors/nvim/init.lua FILE.py -S nvim_driver.lua` with
-- $CODEEXEC_TEST_PARAMS naming a JSON file: {"scenario": ..., "out": ..., ...}.
-- Writes what it observed as JSON to params.out, then quits with `qa!` (exit 0), or with
-- `cquit 1` on any failure (the JSON then carries "failure"). Every wait is bounded.

local params = vim.json.decode(table.concat(vim.fn.readfile(vim.env.CODEEXEC_TEST_PARAMS), '\n'))
local WAIT_MS = params.wait_ms or 15000
local observed = { steps = {}, notifications = {} }
vim.lsp.set_log_level(params.lsp_log_level or 'debug') -- its tail is printed on failure

local function log(message)
  io.stderr:write('[driver] ' .. message .. '\n')
  table.insert(observed.steps, message)
end

local function write_out()
  vim.fn.writefile({ vim.json.encode(observed) }, params.out)
end

local function fail(message)
  observed.failure = message
  io.stderr:write('[driver] FAILED: ' .. message .. '\n')
  pcall(write_out)
  vim.cmd('cquit 1')
end

-- Record vim.notify (explain/fix errors and the server's showMessage are shown this way)
-- instead of showing it: an ERROR-level message inside vim.cmd() would abort the command.
vim.notify = function(message, level)
  table.insert(observed.notifications, { message = message, level = level or vim.log.levels.INFO })
  io.stderr:write(('[notify %s] %s\n'):format(tostring(level), message))
end

local function wait_for(what, predicate, timeout)
  local ok = vim.wait(timeout or WAIT_MS, predicate, 20)
  if not ok then
    error('timed out waiting for ' .. what, 0)
  end
end

local function codeexec_client()
  return vim.lsp.get_clients({ bufnr = 0, name = 'codeexec' })[1]
end

local function wait_attached()
  wait_for('the codeexec client to attach', function()
    local client = codeexec_client()
    return client ~= nil and client.initialized == true
  end)
  local client = assert(codeexec_client())
  observed.offset_encoding = client.offset_encoding
  local provider = client.server_capabilities.executeCommandProvider
  observed.server_commands = type(provider) == 'table' and provider.commands or {}
  return client
end

local function codeexec_diagnostics()
  local found = {}
  for _, d in ipairs(vim.diagnostic.get(0)) do
    if d.source == 'codeexec' then
      table.insert(found, {
        lnum = d.lnum,
        col = d.col,
        end_lnum = d.end_lnum,
        end_col = d.end_col,
        code = d.code,
        source = d.source,
        message = d.message,
        severity = d.severity,
      })
    end
  end
  table.sort(found, function(a, b)
    return a.lnum < b.lnum
  end)
  return found
end

-- Counts diagnostic updates, so a wait ends at the first publish after an action.
local diagnostic_updates = 0
vim.api.nvim_create_autocmd('DiagnosticChanged', {
  callback = function()
    diagnostic_updates = diagnostic_updates + 1
  end,
})

--- Run `action`, then wait for the diagnostics it publishes and return the one with `code`.
local function expect_diagnostic(code, action)
  local before = diagnostic_updates
  action()
  local function find()
    for _, d in ipairs(codeexec_diagnostics()) do
      if d.code == code then
        return d
      end
    end
  end
  local ok = vim.wait(WAIT_MS, function()
    return diagnostic_updates > before and find() ~= nil
  end, 20)
  if not ok then
    error(('timed out waiting for a codeexec diagnostic with code %s; have: %s'):format(
      code,
      vim.inspect(codeexec_diagnostics())
    ), 0)
  end
  return find()
end

--- The hover text the server gives for 0-based `row` (through vim.lsp, like `K` does).
local function hover(client, row)
  local request = {
    textDocument = vim.lsp.util.make_text_document_params(0),
    position = { line = row, character = 0 },
  }
  local answers = vim.lsp.buf_request_sync(0, 'textDocument/hover', request, WAIT_MS)
  local answer = answers and answers[client.id]
  if not answer or answer.err or not answer.result then
    error('no hover on line ' .. row .. ': ' .. vim.inspect(answer), 0)
  end
  local contents = answer.result.contents
  return type(contents) == 'table' and (contents.value or vim.inspect(contents)) or contents
end

local function inlay_hints(client)
  local last = vim.api.nvim_buf_line_count(0)
  local request = {
    textDocument = vim.lsp.util.make_text_document_params(0),
    range = { start = { line = 0, character = 0 }, ['end'] = { line = last, character = 0 } },
  }
  local answers = vim.lsp.buf_request_sync(0, 'textDocument/inlayHint', request, WAIT_MS)
  local answer = answers and answers[client.id]
  if not answer or answer.err then
    error('inlayHint failed: ' .. vim.inspect(answer), 0)
  end
  local hints = {}
  for _, hint in ipairs(answer.result or {}) do
    local label = hint.label
    if type(label) == 'table' then
      label = table.concat(vim.tbl_map(function(part)
        return part.value
      end, label))
    end
    local position = hint.position
    table.insert(hints, { line = position.line, character = position.character, label = label })
  end
  return hints
end

--- Select lines first..last (1-based) and apply the code action titled `title`.
local function code_action(title, first, last)
  local titles = {}
  local last_line = vim.api.nvim_buf_get_lines(0, last - 1, last, false)[1]
  vim.cmd(('normal! %dGV%dG'):format(first, last)) -- the visual selection a user makes
  vim.lsp.buf.code_action({
    filter = function(action)
      table.insert(titles, action.title)
      return action.title == title
    end,
    apply = true,
    range = { start = { first, 0 }, ['end'] = { last, #last_line } },
  })
  vim.api.nvim_feedkeys(vim.keycode('<Esc>'), 'nx', false)
  return titles
end

local scenarios = {}

-- "Run selection" from the code action menu on an indented block that raises.
function scenarios.code_action_error()
  local client = wait_attached()
  expect_diagnostic(params.code, function()
    observed.action_titles = code_action('Run selection', params.first, params.last)
  end)
  observed.diagnostics = codeexec_diagnostics()
  observed.hover = hover(client, params.hover_line)
end

-- "Run selection" on a block that prints and ends with an expression.
function scenarios.code_action_value()
  local client = wait_attached()
  observed.action_titles = code_action('Run selection', params.first, params.last)
  -- hover answers null until the run has finished (no nested vim.wait: poll)
  local deadline = vim.uv.hrtime() + WAIT_MS * 1e6
  while true do
    local ok, text = pcall(hover, client, params.hover_line)
    if ok and text then
      observed.hover = text
      break
    end
    if vim.uv.hrtime() > deadline then
      error('timed out waiting for the hover of the run: ' .. tostring(text), 0)
    end
    vim.wait(50)
  end
  observed.inlay_hints = inlay_hints(client)
  observed.inlay_hints_enabled = vim.lsp.inlay_hint.is_enabled({ bufnr = 0 })
  observed.diagnostics = codeexec_diagnostics()
end

-- The plugin's user commands and keymaps.
--- Fix with LLM from the code action on our diagnostic, then :CodeexecExplain (fake model).
function scenarios.llm_fix_and_explain()
  local client = wait_attached()
  local diagnostic = expect_diagnostic(params.code, function()
    code_action('Run selection', params.first, params.last)
  end)
  log('Fix with LLM on line ' .. diagnostic.lnum)
  vim.api.nvim_win_set_cursor(0, { diagnostic.lnum + 1, diagnostic.col })
  local tick = vim.b.changedtick
  local titles = {}
  vim.lsp.buf.code_action({
    filter = function(action)
      table.insert(titles, action.title)
      return action.title == 'Fix with LLM'
    end,
    apply = true,
  })
  observed.fix_titles = titles
  wait_for('the fix to change the buffer', function()
    return vim.b.changedtick ~= tick
  end)
  vim.wait(200) -- let the server see the change
  observed.fixed_lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  observed.diagnostics_after_fix = codeexec_diagnostics()

  log(':CodeexecExplain')
  local windows = #vim.api.nvim_list_wins()
  vim.cmd(('%d,%dCodeexecExplain'):format(params.first, params.last))
  wait_for('the explanation document', function()
    return #vim.api.nvim_list_wins() > windows or vim.bo.filetype == 'markdown'
  end)
  observed.explanation_name = vim.api.nvim_buf_get_name(0)
  observed.explanation_lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  vim.cmd('only')
  vim.cmd('buffer ' .. vim.fn.fnameescape(params.file))
  observed.explain_hover = hover(client, params.first - 1)
end

--- No `codeexec-lsp` on PATH: the Python buffer opened at start-up gets one warning naming
--- the command and how to install it. Then a configured command that exits while starting.
function scenarios.server_cannot_start()
  local function warnings_about(needle)
    local found = {}
    for _, n in ipairs(observed.notifications) do
      if n.level == vim.log.levels.WARN and n.message:find(needle, 1, true) then
        table.insert(found, n.message)
      end
    end
    return found
  end
  wait_for('a warning about the missing server', function()
    return #warnings_about('codeexec-lsp') > 0
  end)
  observed.client_after_missing = codeexec_client() ~= nil
  log('second Python buffer: no second warning for the same command')
  vim.cmd('edit ' .. vim.fn.fnameescape(params.second_file))
  vim.wait(300)
  observed.missing_warnings = warnings_about('codeexec-lsp')

  log('a server command that exits during initialize')
  vim.lsp.config('codeexec', { cmd = params.failing_cmd })
  vim.cmd('edit ' .. vim.fn.fnameescape(params.third_file))
  wait_for('a warning about the server that exited', function()
    return #warnings_about('exited while starting') > 0
  end)
  observed.exit_warnings = warnings_about('exited while starting')
end

function scenarios.commands_and_keymaps()
  local client = wait_attached()
  local maps = {}
  local keys = { '<leader>er', '<leader>eR', '<leader>ee', '<leader>ef', '<leader>ec' }
  for _, mode in ipairs({ 'n', 'x' }) do
    for _, lhs in ipairs(keys) do
      local map = vim.fn.maparg(lhs, mode, false, true)
      if map.buffer == 1 then
        table.insert(maps, mode .. ' ' .. lhs)
      end
    end
  end
  observed.keymaps = maps
  local commands = vim.api.nvim_get_commands({})
  observed.user_commands = vim.tbl_filter(function(name)
    return name:match('^Codeexec') ~= nil
  end, vim.tbl_keys(commands))
  table.sort(observed.user_commands)

  -- 1. :'<,'>CodeexecRun after a linewise visual selection
  log('visual lines + :CodeexecRun')
  expect_diagnostic(params.visual_code, function()
    -- as typed: `:` in visual mode gives `:'<,'>`
    local keys = ('%dGV%dG:CodeexecRun<CR>'):format(params.visual_first, params.visual_last)
    vim.api.nvim_feedkeys(vim.keycode(keys), 'mx', false)
  end)
  observed.visual_marks = { vim.fn.line("'<"), vim.fn.line("'>") }

  -- 2. the run keymap in charwise visual mode on a sub-expression
  log('charwise visual + <leader>er')
  vim.api.nvim_win_set_cursor(0, { params.char_line, params.char_col })
  expect_diagnostic(params.char_code, function()
    vim.api.nvim_feedkeys(vim.keycode(('v%dl<leader>er'):format(params.char_len - 1)), 'mx', false)
  end)
  observed.mode_after_keymap = vim.api.nvim_get_mode().mode

  -- 3. the run keymap in normal mode: the statement under the cursor
  log('normal mode <leader>er')
  vim.api.nvim_win_set_cursor(0, { params.statement_line, 0 })
  expect_diagnostic(params.statement_code, function()
    vim.api.nvim_feedkeys(vim.keycode('<leader>er'), 'mx', false)
  end)
  observed.diagnostics = codeexec_diagnostics()
  observed.statement_hover = hover(client, params.statement_line - 1)

  -- 4. :CodeexecExplain on a line range: the server's answer reaches the user, either as a
  --    document (the explanation) or, without an LLM or without the command, as an error.
  log(':CodeexecExplain')
  local before = #observed.notifications
  local windows = #vim.api.nvim_list_wins()
  vim.cmd(('%d,%dCodeexecExplain'):format(params.visual_first, params.visual_last))
  wait_for('the explanation or an error', function()
    if #vim.api.nvim_list_wins() > windows or vim.bo.filetype == 'markdown' then
      observed.explain_outcome = 'document'
      return true
    end
    for i = before + 1, #observed.notifications do
      local n = observed.notifications[i]
      if n.level == vim.log.levels.ERROR then
        observed.explain_outcome = 'error'
        observed.explain_error = n.message
        return true
      end
    end
    return false
  end)
  if observed.explain_outcome == 'document' then
    vim.cmd('only') -- back to the Python buffer
    vim.cmd('buffer ' .. vim.fn.fnameescape(params.file))
  end

  -- 5. :CodeexecRestart restarts the server's session (codeexec.restart) or, when the server
  --    has no such command, the language server, as :CodeexecRestart! always does;
  --    then :CodeexecRunFile on the new server
  local old_id = client.id
  if vim.list_contains(observed.server_commands, 'codeexec.restart') then
    log(':CodeexecRestart (session)')
    local count = #observed.notifications
    vim.cmd('CodeexecRestart')
    wait_for('the session restart to be reported', function()
      return #observed.notifications > count
    end)
    log(':CodeexecRestart!')
    vim.cmd('CodeexecRestart!')
  else
    log(':CodeexecRestart')
    vim.cmd('CodeexecRestart')
  end
  wait_for('a new codeexec client', function()
    local new = codeexec_client()
    return new ~= nil and new.id ~= old_id and new.initialized == true
  end)
  observed.restarted = true
  log(':CodeexecRunFile')
  expect_diagnostic(params.file_code, function()
    vim.cmd('CodeexecRunFile')
  end)
  observed.file_diagnostics = codeexec_diagnostics()
end

--- Poll hover on `row` until the finished run answers it (hover is null while it runs).
local function hover_when_run(client, row)
  local deadline = vim.uv.hrtime() + WAIT_MS * 1e6
  while true do
    local ok, text = pcall(hover, client, row)
    if ok and text then
      return text
    end
    if vim.uv.hrtime() > deadline then
      error('timed out waiting for the hover of the run: ' .. tostring(text), 0)
    end
    vim.wait(50)
  end
end

-- A plot: "Run selection", hover names the figure, then the "Show output" code action opens
-- the page through Neovim's own window/showDocument handler, which hands an external
-- document to vim.ui.open (recorded here instead of starting a browser).
function scenarios.plot_show_output()
  local client = wait_attached()
  local opened = {}
  vim.ui.open = function(uri)
    table.insert(opened, uri)
    return {
      wait = function()
        return { code = 0, stdout = '', stderr = '' }
      end,
    }
  end
  observed.action_titles = code_action('Run selection', params.first, params.last)
  observed.hover = hover_when_run(client, params.first - 1)
  observed.inlay_hints = inlay_hints(client)
  log('Show output')
  observed.output_titles = code_action('Show output', params.first, params.last)
  wait_for('the output page to be opened', function()
    return #opened > 0
  end)
  observed.opened = opened
end

local function main()
  local scenario = scenarios[params.scenario]
  if not scenario then
    error('unknown scenario ' .. tostring(params.scenario), 0)
  end
  scenario()
end

local function run()
  local ok, err = xpcall(main, function(e)
    return debug.traceback(tostring(e), 2)
  end)
  if not ok then
    fail(err)
  else
    write_out()
    vim.cmd('qa!')
  end
end

-- -S scripts run before startup ends; drive the editor as a user would, after VimEnter.
if vim.v.vim_did_enter == 1 then
  run()
else
  vim.api.nvim_create_autocmd('VimEnter', {
    once = true,
    callback = function()
      vim.schedule(run)
    end,
  })
end

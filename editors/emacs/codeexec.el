;;; codeexec.el --- Eglot set-up for codeexec-lsp  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: languages, tools, python

;;; Commentary:

;; An Eglot set-up for codeexec-lsp (`pipx install .' in a clone of it):
;;
;;   (load "/path/to/codeexec-lsp/editors/emacs/codeexec.el")
;;   (add-hook 'python-mode-hook #'eglot-ensure)  ; python-ts-mode-hook too
;;
;; Loading this file
;; - puts codeexec-lsp first in `eglot-server-programs' for `python-mode'
;;   and `python-ts-mode' (see `codeexec-eglot-contact');
;; - defines `codeexec-run-region', `codeexec-run-buffer',
;;   `codeexec-explain-region', `codeexec-fix-region' and
;;   `codeexec-restart', which send `workspace/executeCommand' with
;;   [uri, range] to the server;
;; - turns on `codeexec-mode' (keys under `codeexec-keymap-prefix',
;;   default C-c e) in the Python buffers Eglot manages.
;;
;; Eglot runs ONE server per major mode and project.  With this file
;; that server is codeexec-lsp.  To keep pyright/pylsp/basedpyright as
;; well, set `codeexec-eglot-companion' to its command: Eglot then
;; starts the `rass' multiplexer (pip install rassumfrassum), which runs
;; both servers behind one connection.
;;
;; Settings reach the server through `eglot-workspace-configuration'
;; (section `:codeexec', the same keys as in every editor), best in
;; the project's .dir-locals.el:
;;
;;   ((python-mode
;;     . ((eglot-workspace-configuration
;;         . (:codeexec (:timeout 10 :llm (:model "qwen2.5-coder")))))))
;;
;; or for every project:
;;
;;   (setq-default eglot-workspace-configuration
;;                 '(:codeexec (:executor "session" :timeout 30)))
;;
;; The server asks for that section (workspace/configuration) when it
;; starts and after `M-x eglot-signal-didChangeConfiguration'.

;;; Code:

(require 'cl-lib)
(require 'eglot)
(require 'jsonrpc)
(require 'flymake)

(defgroup codeexec nil
  "Run, explain and fix Python code through codeexec-lsp."
  :group 'eglot
  :prefix "codeexec-")

(defcustom codeexec-server-command '("codeexec-lsp")
  "Command that starts codeexec-lsp on stdio.
E.g. (\"/path/to/venv/bin/codeexec-lsp\")
or (\"python3\" \"-m\" \"codeexec_lsp\")."
  :type '(repeat string))

(defcustom codeexec-eglot-companion nil
  "Another Python server to run next to codeexec-lsp, or nil.
E.g. (\"pyright-langserver\" \"--stdio\") or (\"pylsp\").  Eglot runs
one server per buffer, so both are started by the rassumfrassum
multiplexer (`pip install rassumfrassum'), which merges their
diagnostics and code actions and sends each `codeexec.*' command to
codeexec-lsp.  Hovers go to the first server only: see
`codeexec-eglot-companion-first'."
  :type '(choice (const :tag "codeexec-lsp alone" nil) (repeat string)))

(defcustom codeexec-eglot-companion-first t
  "Non-nil: the companion server comes first and answers hovers.
Nil: codeexec-lsp comes first, so hovering a line that ran shows its
output, and the companion's hovers are not shown."
  :type 'boolean)

(defcustom codeexec-rass-program "rass"
  "The rassumfrassum multiplexer, used with `codeexec-eglot-companion'."
  :type 'string)

(defcustom codeexec-keymap-prefix "C-c e"
  "Prefix key for `codeexec-command-map' in `codeexec-mode', or nil.
Set it before this file is loaded.  (C-c LETTER is reserved for
users: pick yours.)"
  :type '(choice (const :tag "No prefix key" nil) string))

(defcustom codeexec-display-output t
  "Non-nil: show a run's output in the *codeexec output* buffer."
  :type 'boolean)

(defcustom codeexec-request-timeout nil
  "Seconds to wait for a command's answer, or nil for no limit.
The server has its own limits (the `timeout' setting), and a fix
with an LLM takes a while."
  :type '(choice (const :tag "No limit" nil) number))

(defvar codeexec-command-finished-functions nil
  "Abnormal hook run when a codeexec command answers.
Called with (COMMAND RESULT ERROR): RESULT is the answer as a plist,
ERROR is nil or the error message.")

(defvar codeexec-last-result nil
  "The last answer of a codeexec command: (COMMAND RESULT ERROR).")

;;; Server program

(defconst codeexec-major-modes '(python-mode python-ts-mode)
  "Major modes codeexec-lsp serves.")

(defun codeexec-settings (&optional server)
  "The `:codeexec' section of `eglot-workspace-configuration' here.
SERVER is passed on when that variable is a function."
  (let ((config (if (functionp eglot-workspace-configuration)
                    (ignore-errors
                      (funcall eglot-workspace-configuration server))
                  eglot-workspace-configuration)))
    ;; A plist (:codeexec (...)) or the older alist ((codeexec . (...))).
    (if (and (consp config) (consp (car config)))
        (cdr (or (assq :codeexec config) (assq 'codeexec config)
                 (assoc "codeexec" config)))
      (plist-get config :codeexec))))

(defun codeexec--initialization-options (server)
  "The initializationOptions for SERVER: the same settings, at once.
The server also asks for them (workspace/configuration), but only
after it has started; this way even its first answers use them."
  (or (codeexec-settings server) (make-hash-table)))

(defun codeexec-eglot-contact (&rest _)
  "The command Eglot starts for Python buffers.
An `eglot-server-programs' contact function."
  (let ((command
         (if codeexec-eglot-companion
             (let ((servers (if codeexec-eglot-companion-first
                                (list codeexec-eglot-companion
                                      codeexec-server-command)
                              (list codeexec-server-command
                                    codeexec-eglot-companion))))
               `(,codeexec-rass-program
                 "--" ,@(car servers) "--" ,@(cadr servers)))
           codeexec-server-command)))
    (codeexec--check-programs
     (delete-dups (list (car command) (car codeexec-server-command))))
    `(,@command :initializationOptions ,#'codeexec--initialization-options)))

(defun codeexec--check-programs (programs)
  "Signal one clear error if a program of PROGRAMS cannot be found.
Eglot would otherwise fail with \"Searching for program: No such file or
directory\", naming neither the setting nor the install.  The usual
cause: Emacs started outside the virtualenv the server was installed in."
  (dolist (program programs)
    (unless (executable-find program (file-remote-p default-directory))
      (user-error
       "codeexec: cannot start the language server: `%s' is not on Emacs's exec-path.  To fix: %s"
       program
       (if (equal program codeexec-rass-program)
           "install it with `pipx install rassumfrassum', or set `codeexec-rass-program'"
         (concat "install it with `pipx install /path/to/codeexec-lsp' (your clone) or "
                 "`pipx install git+<repository URL>', or (setq codeexec-server-command "
                 "'(\"/path/to/codeexec-lsp/.venv/bin/codeexec-lsp\"))"))))))

(defun codeexec-register ()
  "Put codeexec-lsp first in `eglot-server-programs' for Python."
  (setq eglot-server-programs
        (cons (cons codeexec-major-modes #'codeexec-eglot-contact)
              (cl-remove #'codeexec-eglot-contact eglot-server-programs
                         :key #'cdr :test #'eq))))

(codeexec-register)

(defun codeexec--last-stderr-line (nickname)
  "The last non-empty line of the stderr buffer of Eglot's NICKNAME server, or nil."
  (let ((pattern (format "\\` ?\\*EGLOT (%s/.*stderr\\*\\'" (regexp-quote nickname)))
        line)
    (dolist (buffer (buffer-list))
      (when (and (not line) (string-match-p pattern (buffer-name buffer)))
        (with-current-buffer buffer
          (let ((text (string-trim (buffer-string))))
            (unless (string-empty-p text)
              (setq line (car (last (split-string text "\n" t "[ \t]+")))))))))
    line))

(defun codeexec--explain-failed-connect (connect managed-modes project class contact
                                                 &rest args)
  "Around `eglot--connect': say which command died while starting, and the fix.
Eglot alone says \"-1: Server died\", naming neither the command nor
what to do.  CONNECT is the original function; MANAGED-MODES, PROJECT,
CLASS, CONTACT and ARGS are passed on."
  (condition-case err
      (apply connect managed-modes project class contact args)
    (error
     (let ((command (and (consp contact) (stringp (car contact))
                         (cl-loop for part in contact
                                  until (keywordp part) collect part))))
       (if (not (and command
                     (or (equal (car command) (car codeexec-server-command))
                         (equal (car command) codeexec-rass-program))))
           (signal (car err) (cdr err))
         (let ((said (codeexec--last-stderr-line
                      (file-name-base (directory-file-name (project-root project))))))
           (user-error
            "codeexec: the language server `%s' exited while starting (%s)%s.  Check it in a shell: `codeexec-lsp doctor'.  To fix: install it with `pipx install /path/to/codeexec-lsp' (your clone) or `pipx install git+<repository URL>', or set `codeexec-server-command'"
            (mapconcat #'identity command " ")
            (error-message-string err)
            (if said (concat ": " said) ""))))))))

(when (fboundp 'eglot--connect)
  (advice-add 'eglot--connect :around #'codeexec--explain-failed-connect))

;;; Talking to the server

(defun codeexec--server ()
  "The Eglot server of this buffer, or a clear error."
  (or (eglot-current-server)
      (user-error "codeexec: Eglot does not manage this buffer (M-x eglot)")))

(defun codeexec--position (pos)
  "LSP position of buffer position POS, as Eglot computes them."
  (if (fboundp 'eglot--pos-to-lsp-position)
      (eglot--pos-to-lsp-position pos)
    (save-excursion
      (goto-char pos)
      (list :line (1- (line-number-at-pos pos t))
            :character (/ (- (length (encode-coding-region
                                      (line-beginning-position) pos
                                      'utf-16 t))
                             2)
                          2)))))

(defun codeexec--range (beg end)
  "LSP range from BEG to END."
  (list :start (codeexec--position beg) :end (codeexec--position end)))

(defun codeexec--uri ()
  "The URI Eglot uses for this buffer."
  (plist-get (eglot--TextDocumentIdentifier) :uri))

(defun codeexec--flush-changes ()
  "Send pending edits first, so the server runs what the buffer shows."
  (when (fboundp 'eglot--signal-textDocument/didChange)
    (eglot--signal-textDocument/didChange)))

(defun codeexec--bounds ()
  "The active region's bounds, else point twice.
An empty range means the statement or `# %%' cell at point."
  (if (use-region-p)
      (list (region-beginning) (region-end))
    (list (point) (point))))

(defun codeexec--finish (command result error)
  "Record COMMAND's RESULT or ERROR and run the hook."
  (setq codeexec-last-result (list command result error))
  (when error
    (message "codeexec: %s failed: %s" command error))
  (run-hook-with-args 'codeexec-command-finished-functions
                      command result error))

(defun codeexec--execute (command arguments on-result)
  "Send COMMAND with ARGUMENTS (a vector); call ON-RESULT with the answer.
Asynchronous: Emacs stays usable while the code runs."
  (let ((server (codeexec--server))
        (buffer (current-buffer)))
    (codeexec--flush-changes)
    (jsonrpc-async-request
     server :workspace/executeCommand
     (list :command command :arguments arguments)
     :timeout codeexec-request-timeout
     :success-fn
     (lambda (result)
       (with-demoted-errors "codeexec: %S"
         (when (buffer-live-p buffer)
           (with-current-buffer buffer (funcall on-result result))))
       (codeexec--finish command result nil))
     :error-fn
     (lambda (error)
       (codeexec--finish command nil (or (plist-get error :message)
                                         (format "%S" error))))
     :timeout-fn
     (lambda ()
       (codeexec--finish command nil
                         (format "no answer in %s s"
                                 codeexec-request-timeout))))))

;;; Showing answers

(defun codeexec--run-summary (result)
  "A one-line summary of RESULT, a RunResult plist."
  (let ((status (plist-get result :status))
        (failure (plist-get result :error))
        (value (plist-get result :value)))
    (cond
     ((and failure (listp failure))
      (format "%s: %s (line %s)" (plist-get failure :type)
              (plist-get failure :message) (plist-get failure :line)))
     ((equal status "ok")
      (concat "ran fine" (if (stringp value) (concat " → " value) "")))
     (t (format "%s: %s" status (or (plist-get result :message) ""))))))

(defun codeexec--show-run (result)
  "Echo a summary of RESULT and show its output, if any."
  (let ((summary (codeexec--run-summary result))
        (stdout (or (plist-get result :stdout) ""))
        (stderr (or (plist-get result :stderr) "")))
    (message "codeexec: %s" summary)
    (when (and codeexec-display-output
               (not (and (string-empty-p stdout) (string-empty-p stderr))))
      (with-current-buffer (get-buffer-create "*codeexec output*")
        (let ((inhibit-read-only t))
          (erase-buffer)
          (insert stdout)
          (insert (propertize stderr 'face 'error))
          (insert "\n;; " summary "\n")
          (special-mode))
        (display-buffer (current-buffer))))))

(defun codeexec--client-shows-documents (server)
  "Non-nil if Eglot told SERVER that it opens documents it is sent."
  (let ((capabilities (ignore-errors (eglot-client-capabilities server))))
    (plist-get (plist-get capabilities :window) :showDocument)))

(defun codeexec--show-explanation (result server)
  "Show RESULT's Markdown, unless SERVER already opened it."
  (let ((markdown (plist-get result :markdown)))
    (cond
     ((or (null markdown) (string-empty-p markdown))
      (message "codeexec: no explanation"))
     ((codeexec--client-shows-documents server)
      (message "codeexec: explanation opened"))
     (t
      (with-current-buffer (get-buffer-create "*codeexec explanation*")
        (let ((inhibit-read-only t))
          (erase-buffer)
          (insert markdown)
          (goto-char (point-min))
          (cond ((fboundp 'gfm-view-mode) (gfm-view-mode))
                ((fboundp 'markdown-view-mode) (markdown-view-mode))
                (t (special-mode))))
        (display-buffer (current-buffer)))))))

(defun codeexec--diagnostic-at (beg end)
  "The LSP diagnostic of codeexec on the lines from BEG to END, or nil."
  (let ((from (save-excursion (goto-char beg) (line-beginning-position)))
        (to (save-excursion (goto-char end) (line-end-position))))
    (cl-loop for diagnostic in (flymake-diagnostics from to)
             for lsp = (cdr (assoc 'eglot-lsp-diag
                                   (flymake-diagnostic-data diagnostic)))
             when (and lsp (equal (plist-get lsp :source) "codeexec"))
             return lsp)))

;;; Commands

(defun codeexec-run-region (beg end)
  "Run the code from BEG to END; with no region, the statement at point.
At point means the statement (a whole `def'/`for'/`with' block) or
the `# %%' cell there.  An exception becomes a Flymake diagnostic on
the line and column where it was raised; hovering (Eldoc) a line
that ran shows its output."
  (interactive (codeexec--bounds))
  (codeexec--execute "codeexec.run"
                     (vector (codeexec--uri) (codeexec--range beg end))
                     #'codeexec--show-run))

(defun codeexec-run-buffer ()
  "Run the whole file."
  (interactive)
  (codeexec--execute "codeexec.run" (vector (codeexec--uri))
                     #'codeexec--show-run))

(defun codeexec-explain-region (beg end)
  "Explain the code from BEG to END with the LLM.
With no region, the statement or cell at point."
  (interactive (codeexec--bounds))
  (let ((server (codeexec--server)))
    (message "codeexec: asking the model...")
    (codeexec--execute "codeexec.explain"
                       (vector (codeexec--uri) (codeexec--range beg end))
                       (lambda (result)
                         (codeexec--show-explanation result server)))))

(defun codeexec-fix-region (beg end)
  "Fix the code from BEG to END with the LLM.
With no region, the function or statement at point.  The server
runs the fix before it applies it, as one undoable edit."
  (interactive (codeexec--bounds))
  (let* ((diagnostic (codeexec--diagnostic-at beg end))
         (target (list (codeexec--uri) (codeexec--range beg end)))
         (arguments (vconcat target (and diagnostic (list diagnostic)))))
    (message "codeexec: asking the model for a fix...")
    (codeexec--execute "codeexec.fix" arguments
                       (lambda (result)
                         (message "codeexec: %s"
                                  (or (plist-get result :message) ""))))))

(defun codeexec-restart ()
  "Restart the server's Python session: its variables and imports go."
  (interactive)
  (codeexec--execute "codeexec.restart" (vector)
                     (lambda (result)
                       (message "%s" (or (plist-get result :message)
                                         "codeexec: restarted")))))

(defun codeexec-code-actions (beg end)
  "Pick one of the code actions for the code from BEG to END."
  (interactive (codeexec--bounds))
  (eglot-code-actions beg end nil t))

;;; Keys

(defvar codeexec-command-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "r") #'codeexec-run-region)
    (define-key map (kbd "b") #'codeexec-run-buffer)
    (define-key map (kbd "e") #'codeexec-explain-region)
    (define-key map (kbd "f") #'codeexec-fix-region)
    (define-key map (kbd "R") #'codeexec-restart)
    (define-key map (kbd "a") #'codeexec-code-actions)
    map)
  "Keys of the codeexec commands.
Under `codeexec-keymap-prefix' in `codeexec-mode'.")
(fset 'codeexec-command-map codeexec-command-map)

(defvar codeexec-mode-map
  (let ((map (make-sparse-keymap)))
    (when codeexec-keymap-prefix
      (define-key map (kbd codeexec-keymap-prefix) 'codeexec-command-map))
    map)
  "Keymap of `codeexec-mode'.")

(define-minor-mode codeexec-mode
  "Keys for codeexec-lsp under `codeexec-keymap-prefix'.

\\{codeexec-command-map}"
  :lighter nil
  :keymap codeexec-mode-map)

(defun codeexec--maybe-enable ()
  "Turn `codeexec-mode' on in the Python buffers Eglot manages."
  (when (apply #'derived-mode-p codeexec-major-modes)
    (codeexec-mode (if (bound-and-true-p eglot--managed-mode) 1 -1))))

(add-hook 'eglot-managed-mode-hook #'codeexec--maybe-enable)

(provide 'codeexec)
;;; codeexec.el ends here

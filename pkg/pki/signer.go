package pki

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certclient "k8s.io/client-go/kubernetes/typed/certificates/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Reasons of the conditions the Signer sets.
const (
	ReasonApproved = "SdncniNodeApproved"
	ReasonDenied   = "SdncniNodeDenied"
	ReasonFailed   = "SdncniSignFailed"
)

// Signer approves and signs the CertificateSigningRequests of SignerName that
// CheckNodeRequest accepts, with the CA of the CASecret, and denies the others with the
// reason. The cluster role runs it: only it (and the pki Job) may read the CA key.
type Signer struct {
	Cache ctrl.Reader // CSRs
	CSRs  certclient.CertificateSigningRequestInterface
	// Secrets of the install namespace: the CA is read at each signing, so a renewed CA
	// signs from then on.
	Secrets coreclient.SecretInterface
	// NodeUser is the node role's ServiceAccount user name.
	NodeUser string
	Validity time.Duration // of a node certificate; default 30 days
	Now      func() time.Time
	Log      logr.Logger
}

// SetupWithManager registers the signer for CSRs of SignerName.
func (s *Signer) SetupWithManager(mgr manager.Manager) error {
	ours := predicate.NewPredicateFuncs(func(o ctrl.Object) bool {
		csr, ok := o.(*certv1.CertificateSigningRequest)
		return ok && csr.Spec.SignerName == SignerName
	})
	return builder.ControllerManagedBy(mgr).Named("ovn-node-signer").
		For(&certv1.CertificateSigningRequest{}, builder.WithPredicates(ours)).Complete(s)
}

// Reconcile decides one CSR: deny, or approve and sign. A CSR already decided (issued,
// denied or failed) is left alone.
func (s *Signer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var csr certv1.CertificateSigningRequest
	if err := s.Cache.Get(ctx, req.NamespacedName, &csr); err != nil {
		return reconcile.Result{}, ctrl.IgnoreNotFound(err)
	}
	if csr.Spec.SignerName != SignerName || len(csr.Status.Certificate) > 0 ||
		has(&csr, certv1.CertificateDenied) || has(&csr, certv1.CertificateFailed) {
		return reconcile.Result{}, nil
	}
	log := s.Log.WithValues("csr", csr.Name, "user", csr.Spec.Username)
	parsed, reason := CheckNodeRequest(&csr, s.NodeUser)
	if reason != nil {
		if has(&csr, certv1.CertificateApproved) {
			// Approved by someone else: still never signed.
			log.Info("refusing to sign an approved request", "reason", reason.Error())
			return reconcile.Result{}, s.condition(ctx, &csr, certv1.CertificateFailed, ReasonFailed, reason.Error(), false)
		}
		log.Info("denied", "reason", reason.Error())
		return reconcile.Result{}, s.condition(ctx, &csr, certv1.CertificateDenied, ReasonDenied, reason.Error(), true)
	}
	if !has(&csr, certv1.CertificateApproved) {
		if err := s.condition(ctx, &csr, certv1.CertificateApproved, ReasonApproved,
			"the node's own ServiceAccount, for its own node name", true); err != nil {
			return reconcile.Result{}, err
		}
	}
	ca, err := s.ca(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	validity := s.Validity
	if validity == 0 {
		validity = 30 * 24 * time.Hour
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	cert, err := SignNode(ca, parsed, csr.Spec.ExpirationSeconds, validity, now())
	if err != nil {
		return reconcile.Result{}, err
	}
	csr.Status.Certificate = cert
	if _, err := s.CSRs.UpdateStatus(ctx, &csr, metav1.UpdateOptions{}); err != nil {
		return reconcile.Result{}, fmt.Errorf("issue %s: %w", csr.Name, err)
	}
	log.Info("issued", "node", parsed.Subject.CommonName)
	return reconcile.Result{}, nil
}

// condition adds a condition to csr, through the approval subresource (approval, denial)
// or the status one (failure); csr is updated with the API server's answer.
func (s *Signer) condition(ctx context.Context, csr *certv1.CertificateSigningRequest, typ certv1.RequestConditionType,
	reason, msg string, approval bool) error {
	csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
		Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
		LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()})
	var out *certv1.CertificateSigningRequest
	var err error
	if approval {
		out, err = s.CSRs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	} else {
		out, err = s.CSRs.UpdateStatus(ctx, csr, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", typ, csr.Name, err)
	}
	*csr = *out
	return nil
}

func (s *Signer) ca(ctx context.Context) (Pair, error) {
	sec, err := s.Secrets.Get(ctx, CASecret, metav1.GetOptions{})
	if err != nil {
		return Pair{}, fmt.Errorf("read CA: %w", err)
	}
	ca := Pair{Cert: sec.Data[keyCACert], Key: sec.Data[keyCAKey]}
	if _, _, err := ca.parse(); err != nil {
		return Pair{}, err
	}
	return ca, nil
}

func has(csr *certv1.CertificateSigningRequest, typ certv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

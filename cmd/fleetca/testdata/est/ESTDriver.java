// ESTDriver drives Bouncy Castle's EST client (org.bouncycastle.est, Debian's
// libbcpkix-java) against fleetca, for cmd/fleetca/est_e2e_test.go, which
// compiles it with javac. Usage:
//
//   java ESTDriver HOST:PORT ROOT.pem DEVICE TOKEN OUTDIR
//
// It fetches cacerts (OUTDIR/cacerts.pem) and csrattrs (one OID a line on
// stdout, "csrattr OID"), enrolls DEVICE with a new P-256 key by
// simpleenroll with HTTP Basic (DEVICE, TOKEN), writing OUTDIR/bc.key and
// OUTDIR/bc.crt, then renews that certificate by simplereenroll over
// mutual TLS with the same key (OUTDIR/bc-renewed.crt). Any failure is an
// exception and a non-zero exit.

import java.io.FileInputStream;
import java.io.FileWriter;
import java.io.InputStream;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.est.CACertsResponse;
import org.bouncycastle.est.CSRRequestResponse;
import org.bouncycastle.est.ESTService;
import org.bouncycastle.est.EnrollmentResponse;
import org.bouncycastle.est.jcajce.JcaHttpAuthBuilder;
import org.bouncycastle.est.jcajce.JsseESTServiceBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;

public class ESTDriver {
    public static void main(String[] args) throws Exception {
        String server = args[0], device = args[2], token = args[3], out = args[4];
        X509Certificate root;
        try (InputStream in = new FileInputStream(args[1])) {
            root = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
        trust.load(null, null);
        trust.setCertificateEntry("root", root);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        X509TrustManager tm = (X509TrustManager) tmf.getTrustManagers()[0];

        ESTService est = new JsseESTServiceBuilder(server, tm).build();

        CACertsResponse ca = est.getCACerts();
        List<X509Certificate> cas = toX509(ca.getCertificateStore().getMatches(null));
        writePEM(out + "/cacerts.pem", cas.toArray());

        CSRRequestResponse attrs = est.getCSRAttributes();
        for (ASN1ObjectIdentifier oid : attrs.getAttributesResponse().getRequirements()) {
            System.out.println("csrattr " + oid.getId());
        }

        KeyPairGenerator kpg = KeyPairGenerator.getInstance("EC");
        kpg.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair kp = kpg.generateKeyPair();
        PKCS10CertificationRequest csr = csr(device, kp);
        EnrollmentResponse enrolled = est.simpleEnroll(false, csr,
            new JcaHttpAuthBuilder("fleetca", device, token.toCharArray()).build());
        X509Certificate leaf = only(enrolled);
        writePEM(out + "/bc.key", new Object[] {kp.getPrivate()});
        writePEM(out + "/bc.crt", new Object[] {leaf});

        // simplereenroll: the certificate just issued is the TLS client
        // certificate, with the intermediate from cacerts.
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        Certificate[] chain = new Certificate[] {leaf, cas.get(0)};
        ks.setKeyEntry("device", kp.getPrivate(), "x".toCharArray(), chain);
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, "x".toCharArray());
        ESTService mtls = new JsseESTServiceBuilder(server, tm).withKeyManagers(kmf.getKeyManagers()).build();
        EnrollmentResponse renewed = mtls.simpleEnroll(true, csr(device, kp), null);
        writePEM(out + "/bc-renewed.crt", new Object[] {only(renewed)});
        System.out.println("ok");
    }

    static PKCS10CertificationRequest csr(String cn, KeyPair kp) throws Exception {
        return new JcaPKCS10CertificationRequestBuilder(new X500Name("CN=" + cn), kp.getPublic())
            .build(new JcaContentSignerBuilder("SHA256withECDSA").build(kp.getPrivate()));
    }

    static X509Certificate only(EnrollmentResponse r) throws Exception {
        if (!r.isCompleted()) {
            throw new IllegalStateException("enrollment not completed");
        }
        List<X509Certificate> certs = toX509(r.getStore().getMatches(null));
        if (certs.size() != 1) {
            throw new IllegalStateException(certs.size() + " certificates in the enrollment response, want 1");
        }
        return certs.get(0);
    }

    static List<X509Certificate> toX509(Collection<X509CertificateHolder> hs) throws Exception {
        List<X509Certificate> out = new ArrayList<>();
        JcaX509CertificateConverter conv = new JcaX509CertificateConverter();
        for (X509CertificateHolder h : hs) {
            out.add(conv.getCertificate(h));
        }
        return out;
    }

    static void writePEM(String path, Object[] objs) throws Exception {
        try (JcaPEMWriter w = new JcaPEMWriter(new FileWriter(path))) {
            for (Object o : objs) {
                w.writeObject(o);
            }
        }
    }
}
